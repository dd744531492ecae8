/**
 * Checkpoints: the load pauses, streams finish, faults heal, every agent reconnects, every process collects its
 * garbage, and the soak samples descriptors and RSS of every process while nothing is in flight, so the samples are
 * comparable over time. A process's baseline is its first checkpoint after 15 s of load.
 */
import { sampleProc, type ProcSample } from "../lib/proc.ts";
import { connectivity, leftovers, targetOf } from "./cluster.ts";
import type { Proc } from "./procs.ts";
import { sleep, waitFor, type Checkpoint, type Soak } from "./state.ts";

const MiB = 1024 * 1024;

/** "12.3 MiB" (no decimal from 100 MiB on). */
export const fmtMiB = (b: number) => `${(b / MiB).toFixed(b >= 100 * MiB ? 0 : 1)} MiB`;

/** Stops the load and waits until streams, the target and the agent connections settled; what did not, as text. */
async function quiesce(s: Soak): Promise<string[]> {
  s.load.phase = "quiet";
  if (s.faults.processFault !== null) await s.faults.processFault;
  for (const p of s.proxies) p.healAll();
  await Promise.all(s.load.loops);
  const target = targetOf(s);
  const waits: string[] = [];
  if (!(await waitFor(() => s.streams.open.size === 0, 60_000))) waits.push(`${s.streams.open.size} streams not settled`);
  if (!(await waitFor(() => target.active === 0, 10_000))) waits.push(`target has ${target.active} open sockets`);
  const conn = await waitFor(() => connectivity(s).ok && leftovers(s).length === 0, 20_000);
  if (!conn) waits.push(...connectivity(s).missing, ...leftovers(s));
  return waits;
}

/** After a full GC everywhere: three readings 300 ms apart per running process; the least fds, the median RSS. */
async function sampleAtRest(s: Soak): Promise<Map<Proc, ProcSample>> {
  await sleep(1000);
  Bun.gc(true);
  await targetOf(s).gc();
  for (const p of s.procs.all) if (p.exitedAt === 0 && p.role !== null) p.role.proc.kill("SIGUSR2");
  await sleep(500);
  const reads = new Map<Proc, ProcSample[]>();
  for (let i = 0; i < 3; i++) {
    for (const p of s.procs.all) {
      if (p.exitedAt !== 0) continue;
      const sample = sampleProc(p.pid);
      if (sample) reads.set(p, [...(reads.get(p) ?? []), sample]);
    }
    await sleep(300);
  }
  const out = new Map<Proc, ProcSample>();
  for (const [p, ss] of reads) {
    const fds = Math.min(...ss.map((x) => x.fds));
    const rss = ss.map((x) => x.rssKiB).sort((a, b) => a - b)[Math.floor(ss.length / 2)] as number;
    out.set(p, { at: Date.now(), fds, rssKiB: rss });
  }
  return out;
}

/** Stops the load, lets everything settle, samples every process and prints the checkpoint's report. */
export async function checkpoint(s: Soak, label: string): Promise<Checkpoint> {
  const waits = await quiesce(s);
  const samples: Checkpoint["samples"] = {};
  for (const [p, sample] of await sampleAtRest(s)) {
    p.checkpoints.push(sample);
    samples[p.name] = { ...sample, gen: p.gen };
    // Baseline: a process's first checkpoint after it carried load for 15 s or more.
    if (p.baseline === null && Date.now() - p.startedAt > 15_000) {
      p.baseline = sample;
      p.baselineFrom = s.checkpoints.length === 0 ? "after warm-up" : `own, checkpoint ${s.checkpoints.length}`;
    }
  }
  if (waits.length > 0) s.journal.finding(`checkpoint "${label}" did not settle: ${waits.join("; ")}`);
  const t = s.streams.totals;
  const cp: Checkpoint = {
    at: Date.now(),
    label,
    settled: waits.length === 0,
    samples,
    totals: { ok: t.ok, failedExplained: t.failedExplained, unexplained: t.unexplained, corruptBytes: t.corruptBytes, hangs: t.hangs, bytesVerified: t.bytesVerified, started: t.started },
  };
  s.checkpoints.push(cp);
  report(s, cp);
  return cp;
}

function report(s: Soak, cp: Checkpoint): void {
  const totals = s.streams.totals;
  const say = (line: string) => s.journal.say(line);
  const prev = s.checkpoints[s.checkpoints.length - 2];
  const dt = prev ? (cp.at - prev.at) / 1000 : (cp.at - s.journal.t0) / 1000;
  const dBytes = cp.totals.bytesVerified - (prev?.totals.bytesVerified ?? 0);
  const explained = [...totals.explainedBy].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  const faults = [...s.faults.counts].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  say(
    `== ${cp.label}: streams ok ${totals.ok} (+${cp.totals.ok - (prev?.totals.ok ?? 0)}), resets as designed ${totals.abortsAsExpected}, ` +
      `failed on a faulted path ${totals.failedExplained} (${explained}), unexplained ${totals.unexplained}, ` +
      `corrupted bytes ${totals.corruptBytes}, silent truncations ${totals.silentTruncations}, slow failures ${totals.slowFailures}, hangs ${totals.hangs}`,
  );
  const u = s.udp.totals;
  say(`   UDP: ${u.sent} datagrams sent, ${u.echoed} came back byte-exact (${((100 * (u.sent - u.echoed)) / Math.max(1, u.sent)).toFixed(1)} % lost), corrupted ${u.corrupt}, duplicated ${u.duplicated}`);
  say(`   verified ${fmtMiB(totals.bytesVerified)} (+${fmtMiB(dBytes)}, ${(dBytes / MiB / Math.max(1, dt)).toFixed(1)} MiB/s); faults so far: ${faults}; soak loop lag max ${s.load.lagMaxMs.toFixed(0)} ms`);
  const parts: string[] = [];
  for (const [name, sample] of Object.entries(cp.samples)) {
    const p = s.procs.latest(name) as Proc;
    const b = p.baseline;
    parts.push(`${name}${sample.gen > 1 ? `#${sample.gen}` : ""} ${sample.fds} fd/${(sample.rssKiB / 1024).toFixed(0)} MB${b && b !== p.checkpoints[p.checkpoints.length - 1] ? ` (base ${b.fds}/${(b.rssKiB / 1024).toFixed(0)})` : ""}`);
  }
  say(`   at rest: ${parts.join(", ")}`);
  s.load.lagMaxMs = 0;
}
