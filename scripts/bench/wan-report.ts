/**
 * The WAN benchmark's report (`npm run bench -- --wan`): the figures table (per link, per path, ratio tunnel / link
 * only), the memory table, and issue 15's targets, which are only reported met / not met.
 */
import { median } from "./figures.ts";
import type { WanOptions, WanPoint } from "./options.ts";
import { cell, fmt, ratioCell, table, type TargetRow } from "./report.ts";
import type { Bench } from "./run.ts";
import { LINK_ONLY, pointLabel, WAN_FIGURES, wanKey, type RssPeaks, type WanSetup } from "./wan.ts";

const MiB = 1024;

/** One value as is, several as "median (min–max)". */
const one = (vals: number[] | undefined) => (vals && vals.length === 1 ? fmt(vals[0] as number) : cell(vals));

/** The figures table: a row per link and figure, a column per path with its ratio to link only. */
export function printWanFigures(b: Bench, s: WanSetup, w: WanOptions): void {
  const names = s.paths.map((p) => p.name);
  const per = w.rounds > 1 ? `${w.rounds} rounds, median (min–max)` : "one run";
  b.out(`\n## WAN figures: ${per}; paths interleaved (order rotated each test); ratio = path / ${LINK_ONLY}\n`);
  const header = ["link (RTT, rate each way)", "figure", ...names.flatMap((n, i) => (i === 0 ? [n] : [n, "ratio"]))];
  const rows: string[][] = [];
  for (const p of w.points) {
    for (const fig of Object.values(WAN_FIGURES)) {
      const byPath = b.figures.results.get(wanKey(p, fig));
      if (!byPath) continue;
      const ref = median(byPath.get(LINK_ONLY) ?? []);
      rows.push([pointLabel(p), fig, ...names.flatMap((n, i) => (i === 0 ? [one(byPath.get(n))] : [one(byPath.get(n)), ratioCell(median(byPath.get(n) ?? []) / ref)]))]);
    }
  }
  b.out(table(header, rows));
  const q = s.settings.map((x) => `${pointLabel(x)}: ${fmt(x.queueBytes / 1e6)} MB`).join("; ");
  b.out(`\nBottleneck queue per direction: ${q}. Warm-up before each window: max(${w.warmMinMs / 1000} s, ${w.warmRtts} RTT); window ${w.measureMs / 1000} s.`);
  if (s.tlsReason) b.out(`TLS: not available (${s.tlsReason})`);
}

/** The memory table: idle, peak over the run and peak per link, server and agent of each pair. */
export function printWanMemory(b: Bench, s: WanSetup, w: WanOptions, rss: RssPeaks): void {
  b.out("\n## Memory during the WAN run (VmRSS, MiB; sampled every 100 ms)\n");
  const rows: string[][] = [];
  const above = (peak: number, idle: number) => `${fmt(peak / MiB)} (+${fmt((peak - idle) / MiB)})`;
  for (const pair of s.pairs) {
    const [si, ai] = pair.idleKiB;
    rows.push([`${pair.name}: idle`, fmt(si / MiB), fmt(ai / MiB)]);
    const all = rss.overall.get(pair.name);
    if (all) rows.push([`${pair.name}: peak over the run (above idle)`, above(all[0], si), above(all[1], ai)]);
    for (const p of w.points) {
      const pk = rss.byPoint.get(pointLabel(p))?.get(pair.name);
      if (pk) rows.push([`${pair.name}: peak at ${pointLabel(p)}`, above(pk[0], si), above(pk[1], ai)]);
    }
  }
  b.out(table(["", "server", "agent"], rows));
  b.out(`\nThe link emulator's own process peaked at ${fmt(rss.linkPeakKiB / MiB)} MiB (not a target).`);
}

const times = (v: number) => `${v.toFixed(2)}×`;

/** Issue 15's targets that the WAN run measures, one row per link where the target is per link. */
export function evaluateWanTargets(b: Bench, s: WanSetup, w: WanOptions, rss: RssPeaks): TargetRow[] {
  const rows: TargetRow[] = [];
  const tunnels = s.pairs.map((p) => p.name);
  const short = (n: string) => (n === "tunnel" ? "plaintext" : n.replace("tunnel ", ""));
  const med = (p: WanPoint, fig: string, path: string) => b.figures.med(wanKey(p, fig), path);
  const ratio = (p: WanPoint, fig: string, path: string) => med(p, fig, path) / med(p, fig, LINK_ONLY);
  const judge = (target: string, parts: [string, number][], ok: (v: number) => boolean, show: (v: number) => string) => {
    const measured = parts.filter(([, v]) => Number.isFinite(v));
    rows.push({
      target,
      value: measured.length === 0 ? "not measured" : parts.map(([k, v]) => `${k} ${Number.isFinite(v) ? show(v) : "–"}`).join(", "),
      // Not met if any measured value misses; unknown if one is missing and the rest pass.
      met: measured.some(([, v]) => !ok(v)) ? false : measured.length === parts.length ? true : null,
    });
  };
  for (const p of w.points) {
    const each: [string, number][] = tunnels.flatMap((t) => [
      [`${short(t)} up`, ratio(p, WAN_FIGURES.up1, t)] as [string, number],
      [`${short(t)} down`, ratio(p, WAN_FIGURES.down1, t)] as [string, number],
    ]);
    judge(`${pointLabel(p)}: 1 stream each way ≥ 0.9× link only`, each, (v) => v >= 0.9, times);
  }
  for (const p of w.points) {
    judge(`${pointLabel(p)}: 4 streams, sum ≥ 0.9× link only`, tunnels.map((t) => [short(t), ratio(p, WAN_FIGURES.down4, t)]), (v) => v >= 0.9, times);
  }
  for (const p of w.points) {
    const limit = p.rttMs + 30;
    judge(`${pointLabel(p)}: echo p99 during a download ≤ RTT + 30 ms = ${limit} ms`, tunnels.map((t) => [short(t), med(p, WAN_FIGURES.echoP99, t)]), (v) => v <= limit, (v) => `${fmt(v)} ms`);
    // What the judged figures mean: the link-only floor (a download filling the FIFO) and whether the download saturated.
    const last = rows[rows.length - 1] as TargetRow;
    const bulk = tunnels.map((t) => `${short(t)} ${times(ratio(p, WAN_FIGURES.echoBulk, t))}`).join(", ");
    last.value += `; link only ${fmt(med(p, WAN_FIGURES.echoP99, LINK_ONLY))} ms; download meanwhile / link only's: ${bulk}`;
  }
  const idle = s.pairs.flatMap((p) => [[`${short(p.name)} server`, p.idleKiB[0] / MiB] as [string, number], [`${short(p.name)} agent`, p.idleKiB[1] / MiB] as [string, number]]);
  judge("idle RSS ≤ 40 MiB per process", idle, (v) => v <= 40, (v) => `${fmt(v)} MiB`);
  const growth = s.pairs.flatMap((p) => {
    const pk = rss.overall.get(p.name) ?? [NaN, NaN];
    return [[`${short(p.name)} server`, (pk[0] - p.idleKiB[0]) / MiB] as [string, number], [`${short(p.name)} agent`, (pk[1] - p.idleKiB[1]) / MiB] as [string, number]];
  });
  judge("peak RSS during the WAN run ≤ 128 MiB above idle per process", growth, (v) => v <= 128, (v) => `+${fmt(v)} MiB`);
  return rows;
}

/** The JSON document of `--wan --json`. */
export function wanSummary(b: Bench, s: WanSetup, w: WanOptions, rss: RssPeaks, machine: Record<string, unknown>, targets: TargetRow[]) {
  const figures: Record<string, Record<string, number[]>> = {};
  for (const [f, byPath] of b.figures.results) figures[f] = Object.fromEntries(byPath);
  const pairs = s.pairs.map((p) => [
    p.name,
    {
      idleKiB: p.idleKiB,
      peakKiB: rss.overall.get(p.name),
      peakByLinkKiB: Object.fromEntries(w.points.map((pt) => [pointLabel(pt), rss.byPoint.get(pointLabel(pt))?.get(p.name)])),
    },
  ]);
  return {
    machine,
    mode: "wan",
    rounds: w.rounds,
    links: s.settings,
    warmUp: { minMs: w.warmMinMs, rtts: w.warmRtts },
    measureMs: w.measureMs,
    paths: s.paths.map((p) => p.name),
    figures,
    memory: { pairs: Object.fromEntries(pairs), linkPeakKiB: rss.linkPeakKiB },
    targets,
    notes: [...b.notes, ...b.figures.errors],
  };
}
