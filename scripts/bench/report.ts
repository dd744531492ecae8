/**
 * The benchmark's report: Markdown tables of the figures (median (min–max) and the ratio tunnel/direct of the
 * medians), memory, the extra comparisons, and the targets section, which only reports met / not met.
 */
import { median, type Figures, type PathDef } from "./figures.ts";
import { CONN_WORKERS, PACED_RATE, PARALLEL } from "./options.ts";
import type { Bench, Extras, MemoryFigures, Setup } from "./run.ts";

/** One row of the targets section. */
export interface TargetRow {
  target: string;
  value: string;
  /** null: not measured or not available. */
  met: boolean | null;
}

/** A number for a table: "–" if not finite, 2 decimals below 10, 1 below 100, else a grouped integer. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** "median (min–max)", or "–" without values. */
export function cell(vals: number[] | undefined): string {
  if (!vals || vals.length === 0) return "–";
  return `${fmt(median(vals))} (${fmt(Math.min(...vals))}–${fmt(Math.max(...vals))})`;
}

/** A Markdown table. */
export function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** "0.93×", or "–" if not finite. */
export const ratioCell = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "–");

/** The figures table: one row per figure, a column per path (with its ratio to direct). */
export function printFigures(b: Bench, s: Setup): void {
  const pathNames = s.paths.map((p) => p.name);
  b.out(`\n## Figures: ${b.opts.rounds} rounds, paths interleaved (order rotated each round); median (min–max), ratio = tunnel/direct medians\n`);
  const header = ["figure", ...pathNames.flatMap((p, i) => (i === 0 ? [p] : [p, "ratio"]))];
  const rows: string[][] = [];
  for (const [figure, byPath] of b.figures.results) {
    const d = median(byPath.get("direct") ?? []);
    rows.push([
      figure,
      ...pathNames.flatMap((p, i) => {
        const vals = byPath.get(p);
        if (i === 0) return [cell(vals)];
        return [cell(vals), ratioCell(median(vals ?? []) / d)];
      }),
    ]);
  }
  b.out(table(header, rows));
  if (s.tlsReason) b.out(`\nTLS: not available (${s.tlsReason})`);
}

/** The memory table: idle and peak RSS per path, and the idle-stream run. */
export function printMemory(b: Bench, paths: PathDef[], m: MemoryFigures | null): void {
  b.out("\n## Memory (VmRSS, MiB)\n");
  const rows: string[][] = [];
  for (const p of paths) {
    if (!p.pair) continue;
    const idle = p.pair.idleKiB;
    const peak = b.figures.peakKiB.get(p.name) ?? [NaN, NaN];
    rows.push([`${p.name}: idle`, fmt(idle[0] / 1024), fmt(idle[1] / 1024)]);
    rows.push([`${p.name}: peak during throughput runs (above idle)`, `${fmt(peak[0] / 1024)} (+${fmt((peak[0] - idle[0]) / 1024)})`, `${fmt(peak[1] / 1024)} (+${fmt((peak[1] - idle[1]) / 1024)})`]);
  }
  const n = b.opts.idleStreams.toLocaleString("en-US");
  if (m) {
    rows.push(["fresh pair: idle", fmt(m.idleKiB.server / 1024), fmt(m.idleKiB.agent / 1024)]);
    rows.push([`fresh pair: ${n} idle streams open`, fmt(m.withStreamsKiB.server / 1024), fmt(m.withStreamsKiB.agent / 1024)]);
    rows.push(["fresh pair: after they closed", fmt(m.afterCloseKiB.server / 1024), fmt(m.afterCloseKiB.agent / 1024)]);
    rows.push(["KiB per idle stream", fmt(m.perStreamKiB.server), fmt(m.perStreamKiB.agent)]);
    const split = (s: { rss: number; anon: number; file: number }) => `${fmt(s.rss / 1024)} (anon ${fmt(s.anon / 1024)}, file ${fmt(s.file / 1024)})`;
    rows.push(["fresh pair: idle, split (anonymous / file-backed code pages)", split(m.idleSplitKiB.server), split(m.idleSplitKiB.agent)]);
    rows.push(["fresh pair: right after a burst (8 streams upload)", split(m.afterBurstKiB.server), split(m.afterBurstKiB.agent)]);
    rows.push([`fresh pair: ${m.restSeconds} s after the burst`, split(m.restedKiB.server), split(m.restedKiB.agent)]);
  }
  b.out(table(["", "server", "agent"], rows));
  if (m) b.out(`\n${n} idle streams opened in ${fmt(m.openSeconds)} s; ${fmt(m.perStreamKiB.total)} KiB per stream, server + agent.`);
}

/** The extra comparisons table and notes; what goes into the JSON summary. */
export function printExtras(b: Bench, x: Extras): Record<string, unknown> {
  const extraOut: Record<string, unknown> = {};
  if (Object.keys(x.results).length === 0 && x.notes.length === 0) return extraOut;
  b.out("\n## Extra comparisons (median (min–max))\n");
  const rows: string[][] = [];
  const others = x.paths.slice(1).map(([n]) => n);
  for (const [name, metrics] of Object.entries(x.results)) {
    for (const [metric, byPath] of Object.entries(metrics)) {
      const d = median(byPath.direct ?? []);
      rows.push([`${name}: ${metric}`, cell(byPath.direct), ...others.flatMap((o) => [cell(byPath[o]), ratioCell(median(byPath[o] ?? []) / d)])]);
    }
  }
  if (rows.length > 0) b.out(table(["figure", "direct", ...others.flatMap((o) => [o, "ratio"])], rows));
  for (const n of x.notes) b.out(`- ${n}`);
  Object.assign(extraOut, x.results, { notes: x.notes });
  return extraOut;
}

/** Adds a target row: `value` shown by `show` and judged by `ok`, or "not measured" if not finite. */
function check(rows: TargetRow[], name: string, value: number, ok: (v: number) => boolean, show: (v: number) => string): void {
  rows.push({ target: name, value: Number.isFinite(value) ? show(value) : "not measured", met: Number.isFinite(value) ? ok(value) : null });
}

const times = (v: number) => `${v.toFixed(2)}×`;

/** The iperf3 targets, the way the issue measured rathole and bore (anchors.md). */
function iperfTargets(rows: TargetRow[], x: Extras, T: string, X: string | null): void {
  const xr = (name: string, p: string) => {
    const m = x.results[`iperf3 ${name}`]?.["Gbit/s"];
    return m ? median(m[p] ?? []) / median(m.direct ?? []) : NaN;
  };
  if (!x.results["iperf3 1 stream"]) return;
  check(rows, "iperf3 1 stream ≥ 0.40× direct (plaintext)", xr("1 stream", T), (v) => v >= 0.4, times);
  check(rows, "iperf3 1 stream -R ≥ 0.40× direct (plaintext)", xr("1 stream -R", T), (v) => v >= 0.4, times);
  if (X !== null) {
    check(rows, "iperf3 1 stream ≥ 0.25× direct (TLS)", xr("1 stream", X), (v) => v >= 0.25, times);
    check(rows, "iperf3 1 stream -R ≥ 0.25× direct (TLS)", xr("1 stream -R", X), (v) => v >= 0.25, times);
  }
  check(rows, `iperf3 -P ${PARALLEL} ≥ 0.40× direct`, xr(`-P ${PARALLEL}`, T), (v) => v >= 0.4, times);
}

/** Judges every target from the figures. */
export function evaluateTargets(f: Figures, s: Setup, x: Extras, perStreamKiB: number): TargetRow[] {
  const T = s.plain.name;
  const X = s.tlsPair?.name ?? null;
  const ratio = (fig: string, p: string) => f.med(fig, p) / f.med(fig, "direct");
  const rows: TargetRow[] = [];
  check(rows, "single stream upload ≥ 0.40× direct (plaintext)", ratio("upload, 1 stream (MB/s)", T), (v) => v >= 0.4, times);
  check(rows, "single stream download ≥ 0.40× direct (plaintext)", ratio("download, 1 stream (MB/s)", T), (v) => v >= 0.4, times);
  if (X !== null) {
    check(rows, "single stream upload ≥ 0.25× direct (TLS)", ratio("upload, 1 stream (MB/s)", X), (v) => v >= 0.25, times);
    check(rows, "single stream download ≥ 0.25× direct (TLS)", ratio("download, 1 stream (MB/s)", X), (v) => v >= 0.25, times);
  } else {
    rows.push({ target: "single stream each way ≥ 0.25× direct (TLS)", value: `not available: ${s.tlsReason}`, met: null });
  }
  check(rows, `${PARALLEL} streams upload ≥ 0.40× direct`, ratio(`upload, ${PARALLEL} streams (MB/s)`, T), (v) => v >= 0.4, times);
  check(rows, `${PARALLEL} streams download ≥ 0.40× direct`, ratio(`download, ${PARALLEL} streams (MB/s)`, T), (v) => v >= 0.4, times);
  iperfTargets(rows, x, T, X);
  const p50f = `echo 1 KiB at ${PACED_RATE}/s: p50 (µs)`;
  const p99f = `echo 1 KiB at ${PACED_RATE}/s: p99 (µs)`;
  check(rows, `round trip p50 at ${PACED_RATE}/s adds ≤ 100 µs over direct`, f.med(p50f, T) - f.med(p50f, "direct"), (v) => v <= 100, (v) => `+${Math.round(v)} µs`);
  check(rows, `round trip p99 at ${PACED_RATE}/s ≤ 3× the tunnel's p50`, f.med(p99f, T) / f.med(p50f, T), (v) => v <= 3, times);
  check(rows, "≥ 5,000 new visitor connections/s through one agent", f.med(`new connections/s (${CONN_WORKERS} workers)`, T), (v) => v >= 5000, (v) => `${Math.round(v).toLocaleString("en-US")}/s`);
  check(rows, `idle streams ≤ 10 KiB each, server + agent`, perStreamKiB, (v) => v <= 10, (v) => `${v.toFixed(2)} KiB`);
  const pk = f.peakKiB.get(T);
  const growth = pk ? Math.max(pk[0] - s.plain.idleKiB[0], pk[1] - s.plain.idleKiB[1]) / 1024 : NaN;
  check(rows, "memory during throughput runs < 64 MiB above idle, each process", growth, (v) => v < 64, (v) => `+${v.toFixed(1)} MiB (larger of the two)`);
  return rows;
}

/** Issue 15's memory targets, from the fresh pair (VmRSS; "larger of the two" processes). */
export function memoryTargets(m: MemoryFigures | null): TargetRow[] {
  const rows: TargetRow[] = [];
  const larger = (f: (s: { rss: number }) => number, g: { server: { rss: number }; agent: { rss: number } } | undefined) =>
    g ? Math.max(f(g.server), f(g.agent)) : NaN;
  const idle = larger((s) => s.rss / 1024, m?.idleSplitKiB);
  check(rows, "idle RSS ≤ 40 MiB per process", idle, (v) => v <= 40, (v) => `${v.toFixed(1)} MiB (larger of the two)`);
  const rested = m ? Math.max(m.restedKiB.server.rss / m.idleSplitKiB.server.rss, m.restedKiB.agent.rss / m.idleSplitKiB.agent.rss) - 1 : NaN;
  check(rows, `${m?.restSeconds ?? 60} s after a burst, RSS within 25% of idle`, rested * 100, (v) => v <= 25, (v) => `+${v.toFixed(0)}% (larger of the two)`);
  check(rows, "idle streams ≤ 8 KiB each, server + agent (issue 15)", m?.perStreamKiB.total ?? NaN, (v) => v <= 8, (v) => `${v.toFixed(2)} KiB`);
  return rows;
}

/** The targets table, the errors, the notes and the total time. */
export function printEnd(b: Bench, targets: TargetRow[], startedMs: number): void {
  b.out("\n## Targets\n");
  b.out(table(["target", "measured", "met"], targets.map((t) => [t.target, t.value, t.met === null ? "n/a" : t.met ? "yes" : "**no**"])));
  if (b.figures.errors.length > 0) {
    b.out("\n## Errors\n");
    for (const e of b.figures.errors) b.out(`- ${e}`);
  }
  for (const n of b.notes) b.out(`\nNote: ${n}`);
  b.out(`\nTotal time ${((performance.now() - startedMs) / 1000).toFixed(0)} s.`);
}
