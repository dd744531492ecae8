/**
 * The scale kit's report: a Markdown table per scenario and the targets of issue 19 (met / not / value, as
 * scripts/bench does). Nothing here asserts: a target not met is reported, never an error.
 */
import { fmt, table, type TargetRow } from "../bench/report.ts";
import type { FdLimitResult } from "./fdlimit.ts";
import type { Kit } from "./kit.ts";
import type { LifecycleResult } from "./lifecycle.ts";
import type { MemoryResult } from "./memory.ts";
import type { MultiResult } from "./multi.ts";
import { visitText } from "./probes.ts";
import type { RestartResult } from "./restart.ts";

/** Everything measured (null: the scenario did not run). */
export interface ScaleResults {
  lifecycles: LifecycleResult[];
  restarts: RestartResult[];
  memory: MemoryResult | null;
  fdLimit: FdLimitResult | null;
  multi: MultiResult | null;
}

const n = (v: number) => v.toLocaleString("en-US");
const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "not reached");
const kb = (bytes: number) => `${fmt(bytes / 1000)} kB`;

/** Prints the storm, steady and teardown tables (a column per transport). */
function printLifecycles(kit: Kit, ls: LifecycleResult[]): void {
  if (ls.length === 0) return;
  const head = ["", ...ls.map((l) => l.transport)];
  const col = (f: (l: LifecycleResult) => string) => ls.map(f);
  if (kit.opts.scenarios.has("storm")) {
    kit.out("\n## Storm: every connection dials a fresh server at once\n");
    kit.out(table(head, [
      ["connections registered", ...col((l) => `${n(l.storm.registered)}/${n(l.storm.connections)}`)],
      ["all registered after", ...col((l) => s(l.storm.allMs))],
      ["99% registered after", ...col((l) => s(l.storm.p99Ms))],
      ["most refusals met by one connection", ...col((l) => String(l.storm.maxRefusals))],
      ["connections refused more than twice", ...col((l) => n(l.storm.overTwice))],
      ["SERVER_BUSY answers", ...col((l) => n(l.storm.busy))],
      ["closed before a response", ...col((l) => n(l.storm.bareCloses))],
      ["dial errors / timeouts", ...col((l) => `${n(l.storm.connectErrors)} / ${n(l.storm.timeouts)}`)],
      ["listen queue overflows (kernel, system-wide)", ...col((l) => (Number.isFinite(l.storm.listenOverflows) ? n(l.storm.listenOverflows) : "–"))],
    ]));
  }
  const steady = ls.filter((l) => l.steady !== null);
  if (steady.length > 0) {
    kit.out("\n## Steady: all connected, settled\n");
    const c = (f: (x: NonNullable<LifecycleResult["steady"]>) => string) => ls.map((l) => (l.steady ? f(l.steady) : "–"));
    kit.out(table(head, [
      ["connections registered", ...c((x) => n(x.registered))],
      ["server RSS (idle before the swarm)", ...c((x) => `${fmt(x.rssMiB)} MiB (${fmt(x.idleRssMiB)})`)],
      ["server RSS after the admin requests and visitors", ...c((x) => `${fmt(x.rssAfterAdminMiB)} MiB`)],
      ["server descriptors", ...c((x) => n(x.fds))],
      ["/api/status: median (max) of 3, size", ...c((x) => `${fmt(x.status.medianMs)} (${fmt(x.status.maxMs)}) ms, ${kb(x.status.bytes)}`)],
      ["/metrics: median (max) of 3, size, lines", ...c((x) => `${fmt(x.metrics.medianMs)} (${fmt(x.metrics.maxMs)}) ms, ${kb(x.metrics.bytes)}, ${n(x.metrics.lines)}`)],
      ["/healthz: median of 5", ...c((x) => `${fmt(x.healthzMs)} ms`)],
      ["visitors echoed (4 KiB each)", ...c((x) => visitText(x.visitors))],
    ]));
  }
  const td = ls.filter((l) => l.teardown !== null);
  if (td.length > 0) {
    kit.out("\n## Teardown: every connection drops at once\n");
    const c = (f: (x: NonNullable<LifecycleResult["teardown"]>) => string) => ls.map((l) => (l.teardown ? f(l.teardown) : "–"));
    kit.out(table(head, [
      ["server CPU for the cleanup", ...c((x) => `${x.cpuSeconds.toFixed(2)} s`)],
      ["descriptors back to idle after", ...c((x) => s(x.cleanupMs))],
      ["/healthz meanwhile: max, p99 (answers)", ...c((x) => `${fmt(x.healthzMaxMs)} ms, ${fmt(x.healthzP99Ms)} ms (${x.healthzCount}${x.healthzFailures ? `, ${x.healthzFailures} failed` : ""})`)],
    ]));
  }
}

function printRestarts(kit: Kit, rs: RestartResult[]): void {
  if (rs.length === 0) return;
  kit.out("\n## Restart: SIGTERM and a new server process on the same ports (ms from the SIGTERM)\n");
  const c = (f: (r: RestartResult) => string) => rs.map(f);
  kit.out(table(["", ...rs.map((r) => r.transport)], [
    ["connections", ...c((r) => n(r.connections))],
    ["new process listening (processes started)", ...c((r) => `${s(r.newListeningMs)} (${r.attempts})`)],
    ["old process exited", ...c((r) => s(r.oldExitMs))],
    ["99% registered again", ...c((r) => s(r.p99Ms))],
    ["all registered again", ...c((r) => s(r.allMs))],
    ["SERVER_BUSY / closed before a response / dial errors", ...c((r) => `${n(r.busy)} / ${n(r.bareCloses)} / ${n(r.connectErrors)}`)],
    ["visitors meanwhile (1 KiB echoes)", ...c((r) => visitText(r.visitors))],
  ]));
}

function printMemory(kit: Kit, m: MemoryResult | null): void {
  if (m === null) return;
  kit.out(`\n## Memory: ${n(m.connections)} connections, each carries a ${fmt(m.streamBytes / 1048576)} MiB stream (server VmRSS)\n`);
  kit.out(table(["", "MiB"], [
    ["idle with connections", fmt(m.idleMiB)],
    ["peak during the streams", fmt(m.peakMiB)],
    ["right after", fmt(m.afterMiB)],
    [`after ${m.restSeconds} s idle`, `${fmt(m.restedMiB)} (+${fmt(m.restedMiB - m.idleMiB)})`],
  ]));
  kit.out(`\n${n(m.carried)}/${n(m.connections)} connections carried a whole stream, in ${m.rounds} round${m.rounds === 1 ? "" : "s"} of visitors: ${visitText(m.visitors)}.`);
}

function printFdLimit(kit: Kit, f: FdLimitResult | null): void {
  if (f === null) return;
  kit.out(`\n## At the descriptor limit: ${n(f.dialled)} connections against a server limited to ${n(f.limit)} open files\n`);
  kit.out(table(["", ""], [
    ["connections registered", n(f.registered)],
    ["/healthz meanwhile: max, p99 (answers, failed)", `${fmt(f.healthzMaxMs)} ms, ${fmt(f.healthzP99Ms)} ms (${f.healthzCount}, ${f.healthzFailures})`],
    ["server CPU meanwhile", `${fmt(f.cpuPercent)}% of a core`],
    ["swarm: SERVER_BUSY / closed before a response / timeouts", `${n(f.busy)} / ${n(f.bareCloses)} / ${n(f.timeouts)}`],
    ["server's count of refused connections", f.counter === null ? "no such counter in /metrics" : `${n(f.counted ?? 0)} (${f.counter})`],
  ]));
}

function printMulti(kit: Kit, m: MultiResult | null): void {
  if (m === null) return;
  kit.out(`\n## Multi-server: ${m.servers} servers found by dns: (${m.resolved.join(", ")}), ${n(m.agents)} agents connected to all\n`);
  kit.out(table(["", ""], [
    ["connections registered after", `${s(m.allMs)} (${n(m.connections)} connections)`],
    ["visitors on every server", visitText(m.before)],
    ["visitors on the other four, one server killed", visitText(m.during)],
    ["killed server restarted: its connections back after", s(m.reregisterMs)],
    ["visitors on every server afterwards", visitText(m.after)],
    ["visitors routed per server", m.perServer.map(n).join(" / ")],
  ]));
}

/** Prints every table. */
export function printResults(kit: Kit, r: ScaleResults): void {
  printLifecycles(kit, r.lifecycles);
  printRestarts(kit, r.restarts);
  printMemory(kit, r.memory);
  printFdLimit(kit, r.fdLimit);
  printMulti(kit, r.multi);
}

/** Adds a row: met if `ok(value)`, "not measured" when the value is not finite. */
function check(rows: TargetRow[], target: string, value: number, ok: (v: number) => boolean, show: (v: number) => string): void {
  rows.push({ target, value: Number.isFinite(value) ? show(value) : "not measured", met: Number.isFinite(value) ? ok(value) : null });
}

/** Issue 19's targets, from what ran. Counts smaller than the issue's (--quick) say so in the target's name. */
export function evaluateTargets(kit: Kit, r: ScaleResults): TargetRow[] {
  const rows: TargetRow[] = [];
  const mib = (v: number) => `${fmt(v)} MiB`;
  for (const l of r.lifecycles) {
    const c = n(l.storm.connections);
    if (l.steady) check(rows, `${c} connections: server RSS ≤ 300 MiB (${l.transport})`, l.steady.rssMiB, (v) => v <= 300, mib);
    if (kit.opts.scenarios.has("storm")) {
      const limit = l.transport === "tls" ? 10_000 : 5_000;
      const all = l.storm.registered >= l.storm.connections ? l.storm.allMs : Infinity;
      rows.push({ target: `storm of ${c} (${l.transport}): all registered ≤ ${limit / 1000} s`, value: s(all), met: all <= limit });
      check(rows, `storm of ${c} (${l.transport}): no connection refused more than twice`, l.storm.maxRefusals, (v) => v <= 2, (v) => `at most ${v} (${n(l.storm.overTwice)} over two)`);
    }
    if (l.steady) check(rows, `/metrics at ${c} connections ≤ 200 KB (${l.transport})`, l.steady.metrics.bytes, (v) => v <= 200_000, kb);
    if (l.teardown) {
      check(rows, `${c} dropping at once: ≤ 1 CPU-second of cleanup (${l.transport})`, l.teardown.cpuSeconds, (v) => v <= 1, (v) => `${v.toFixed(2)} s`);
      check(rows, `${c} dropping at once: /healthz never slower than 250 ms (${l.transport})`, l.teardown.healthzMaxMs, (v) => v <= 250, (v) => `max ${fmt(v)} ms`);
    }
  }
  if (r.memory) {
    const m = r.memory;
    check(rows, `after ${n(m.connections)} connections each carried ${fmt(m.streamBytes / 1048576)} MiB: RSS within 64 MiB of idle-with-connections`, m.restedMiB - m.idleMiB, (v) => v <= 64, (v) => `+${fmt(v)} MiB`);
  }
  for (const x of r.restarts) {
    check(rows, `rolling restart (${x.transport}, ${n(x.connections)}): 99% re-registered ≤ 3 s`, x.p99Ms, (v) => v <= 3_000, s);
    check(rows, `rolling restart (${x.transport}): 0 visitors accepted but not routed`, x.visitors.unrouted + x.visitors.broken, (v) => v === 0, (v) => `${v} of ${n(x.visitors.total)} (${n(x.visitors.refused)} refused at connect)`);
  }
  if (r.multi) {
    const m = r.multi;
    const all = [m.before, m.during, m.after];
    const bad = all.reduce((a, t) => a + t.total - t.ok, 0);
    check(rows, `multi-server: every visitor on every server routed (one server killed and restarted)`, bad, (v) => v === 0, (v) => (v === 0 ? `all ${n(all.reduce((a, t) => a + t.total, 0))}` : `${v} not routed`));
  }
  if (r.fdLimit) {
    const f = r.fdLimit;
    const max = f.healthzFailures > 0 || f.healthzCount === 0 ? Infinity : f.healthzMaxMs;
    rows.push({ target: `at the descriptor limit (${n(f.limit)}): /healthz within 100 ms`, value: Number.isFinite(max) ? `max ${fmt(max)} ms` : `${f.healthzFailures} failed of ${f.healthzCount + f.healthzFailures}`, met: max <= 100 });
    rows.push({ target: "at the descriptor limit: refusals counted", value: f.counter === null ? "no counter in /metrics" : `${n(f.counted ?? 0)} (${f.counter})`, met: f.counter !== null && (f.counted ?? 0) > 0 });
  }
  return rows;
}
