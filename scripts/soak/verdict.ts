/**
 * The soak's verdict: the leak check at the final checkpoint (descriptors back to the baseline, servers' and agents'
 * RSS within 10% of theirs), the totals of every stream, and report.json in the log directory. FAIL on any corrupted
 * byte, unexplained failure, silent truncation, slow failure, hang, finding, leak or growth.
 */
import { join } from "node:path";
import type { ProcSample } from "../lib/proc.ts";
import { fmtMiB } from "./checkpoint.ts";
import type { Proc } from "./procs.ts";
import type { Checkpoint, Soak } from "./state.ts";

/** RSS of a server or agent may end this much above its baseline. */
const RSS_TOLERANCE = 0.1;

/** One process at the end against its baseline. */
interface LeakRow {
  name: string;
  gen: number;
  baseFds: number;
  fds: number;
  baseRssKiB: number;
  rssKiB: number;
  baselineFrom: string;
  fdOk: boolean;
  rssOk: boolean;
  /** RSS growth fails the run (servers and agents; the harness processes are only reported). */
  rssGated: boolean;
}

/** A process's baseline; one restarted too late for a baseline of its own is compared with its predecessor's. */
function baselineOf(s: Soak, p: Proc): { base: ProcSample | null; from: string } {
  let base = p.baseline;
  let from = p.baselineFrom;
  if (base === null || base === p.checkpoints[p.checkpoints.length - 1]) {
    const pred = [...s.procs.all].reverse().find((q) => q.name === p.name && q !== p && q.baseline !== null);
    if (base === null || pred) {
      base = pred?.baseline ?? base;
      from = pred ? `predecessor #${pred.gen}` : from;
    }
  }
  return { base, from };
}

function leakCheck(s: Soak, final: Checkpoint): LeakRow[] {
  const rows: LeakRow[] = [];
  for (const name of Object.keys(final.samples)) {
    const p = s.procs.live(name) as Proc;
    const sample = final.samples[name] as ProcSample;
    const { base, from } = baselineOf(s, p);
    if (base === null) continue;
    rows.push({
      name,
      gen: p.gen,
      baseFds: base.fds,
      fds: sample.fds,
      baseRssKiB: base.rssKiB,
      rssKiB: sample.rssKiB,
      baselineFrom: from,
      fdOk: sample.fds <= base.fds,
      rssOk: sample.rssKiB <= base.rssKiB * (1 + RSS_TOLERANCE),
      rssGated: name.startsWith("server") || name.startsWith("agent"),
    });
  }
  return rows;
}

/** Prints the leak table, each process's top warnings, failure latencies and the commonest failure symptoms. */
function printDetails(s: Soak, rows: LeakRow[]): void {
  const say = (line: string) => s.journal.say(line);
  const totals = s.streams.totals;
  say("== leak check (at rest: after the load stopped and every stream closed; fds must not exceed the baseline, servers' and agents' RSS ≤ +10%)");
  for (const r of rows) {
    const rssPct = ((r.rssKiB / r.baseRssKiB - 1) * 100).toFixed(1);
    say(
      `   ${r.name}${r.gen > 1 ? `#${r.gen}` : ""}: fds ${r.baseFds} → ${r.fds} ${r.fdOk ? "ok" : "LEAK"}; RSS ${(r.baseRssKiB / 1024).toFixed(1)} → ${(r.rssKiB / 1024).toFixed(1)} MB (${rssPct}%) ` +
        `${r.rssOk ? "ok" : r.rssGated ? "GROWTH" : "(harness, not gated)"}; baseline ${r.baselineFrom}`,
    );
  }
  for (const p of s.procs.all) {
    if (p.warnings.size === 0) continue;
    const top = [...p.warnings].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, n]) => `${n}× ${k}`);
    say(`   ${p.name}#${p.gen} warnings: ${top.join("; ")}`);
  }
  const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number;
  const lats = [...totals.failLatencies].map(([k, xs]) => {
    const v = [...xs].sort((a, b) => a - b);
    return `${k} p50 ${pct(v, 0.5)} / p99 ${pct(v, 0.99)} / max ${v[v.length - 1]} ms`;
  });
  if (lats.length > 0) say(`   failure latency (fault or stream start → stream closed): ${lats.join("; ")}`);
  if (totals.failReasons.size > 0) {
    const top = [...totals.failReasons].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `${n}× ${k}`);
    say(`   failures by first symptom: ${top.join("; ")}`);
  }
}

/** Why the run fails ([] if it passes). */
function failReasons(s: Soak, rows: LeakRow[]): string[] {
  const totals = s.streams.totals;
  const findings = s.journal.findings;
  const reasons: string[] = [];
  if (totals.corruptBytes > 0) reasons.push(`${totals.corruptBytes} corrupted bytes in ${totals.corruptStreams} streams`);
  if (totals.unexplained > 0) reasons.push(`${totals.unexplained} unexplained failures`);
  if (totals.silentTruncations > 0) reasons.push(`${totals.silentTruncations} silent truncations`);
  if (totals.slowFailures > 0) reasons.push(`${totals.slowFailures} slow failures`);
  if (totals.hangs > 0) reasons.push(`${totals.hangs} hangs`);
  const fdLeaks = rows.filter((r) => !r.fdOk);
  if (fdLeaks.length > 0) reasons.push(`descriptors above baseline: ${fdLeaks.map((r) => `${r.name} +${r.fds - r.baseFds}`).join(", ")}`);
  const growth = rows.filter((r) => !r.rssOk && r.rssGated);
  if (growth.length > 0) reasons.push(`RSS > +10%: ${growth.map((r) => r.name).join(", ")}`);
  if (findings.length > 0) reasons.push(`${findings.length} findings (${findings.slice(0, 3).join(" | ")})`);
  if (totals.ok < 10) reasons.push(`only ${totals.ok} streams completed`);
  const u = s.udp.totals;
  if (u.corrupt > 0) reasons.push(`${u.corrupt} UDP datagrams came back corrupted`);
  if (u.duplicated > 0) reasons.push(`${u.duplicated} UDP datagrams came back twice`);
  if (u.sent >= 100 && u.echoed === 0) reasons.push(`none of ${u.sent} UDP datagrams came back`);
  return reasons;
}

/** report.json: options, verdict, totals, faults, checkpoints, leak rows, processes, problems and findings. */
function writeReport(s: Soak, pass: boolean, reasons: string[], rows: LeakRow[]): string {
  const totals = s.streams.totals;
  const t0 = s.journal.t0;
  const summary = {
    options: s.opts,
    pass,
    reasons,
    totals: {
      ...totals,
      explainedBy: Object.fromEntries(totals.explainedBy),
      failLatencies: Object.fromEntries([...totals.failLatencies].map(([k, xs]) => [k, [...xs].sort((a, b) => a - b)])),
      failReasons: Object.fromEntries(totals.failReasons),
    },
    udp: s.udp.totals,
    faults: Object.fromEntries(s.faults.counts),
    faultLog: s.faults.log,
    checkpoints: s.checkpoints,
    leak: rows,
    processes: s.procs.all.map((p) => ({ name: p.name, gen: p.gen, pid: p.pid, startedAt: p.startedAt - t0, exitedAt: p.exitedAt ? p.exitedAt - t0 : null, peakFds: p.peakFds, peakRssKiB: p.peakRssKiB, warnings: Object.fromEntries(p.warnings) })),
    problems: s.journal.problems,
    findings: s.journal.findings,
  };
  const path = join(s.opts.logDir, "report.json");
  void Bun.write(path, JSON.stringify(summary, null, 1));
  return path;
}

/** Prints the leak check and the verdict, writes report.json; the exit code (0 PASS, 1 FAIL). */
export function verdict(s: Soak, final: Checkpoint): number {
  const rows = leakCheck(s, final);
  printDetails(s, rows);
  const reasons = failReasons(s, rows);
  const pass = reasons.length === 0;
  const path = writeReport(s, pass, reasons, rows);
  const totals = s.streams.totals;
  const fdLeaks = rows.some((r) => !r.fdOk);
  const growth = rows.some((r) => !r.rssOk && r.rssGated);
  s.journal.say(
    `VERDICT: ${pass ? "PASS" : "FAIL"}: ${totals.ok} streams ok, ${fmtMiB(totals.bytesVerified)} verified, ${totals.corruptBytes} corrupted bytes, ` +
      `${totals.failedExplained} failures all on faulted paths, ${totals.unexplained} unexplained, ${totals.hangs} hangs, ` +
      `UDP ${s.udp.totals.echoed}/${s.udp.totals.sent} datagrams back byte-exact (${s.udp.totals.corrupt} corrupted), ` +
      `${fdLeaks ? "DESCRIPTOR LEAK" : "descriptors back to baseline"}, ${growth ? "RSS GROWTH" : "RSS within 10%"}` +
      `${pass ? "" : ` — ${reasons.join("; ")}`} (report: ${path})`,
  );
  return pass ? 0 : 1;
}
