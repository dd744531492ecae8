/**
 * Streams after their visitor started them: matching the servers' access lines and the target's reports to them,
 * the hang watchdog, and settling each one (scripts/soak/classify.ts decides; this file counts and reports).
 */
import type { LogLine } from "../lib/roles.ts";
import { accessKey, accessKeyOf, parseAccessLine } from "./access.ts";
import { classify, expectationsMissed, verifiedBytes, type FaultFacts, type Verdict } from "./classify.ts";
import { SETTLE_WAIT_MS } from "./options.ts";
import type { ProxiedConn } from "./proxy.ts";
import { bump, type Soak, type StreamRec } from "./state.ts";
import { NEVER, type TargetResult } from "./wire.ts";

/** Attaches an access line of server `serverIndex` to its open stream, or parks it until the stream opens. */
export function onAccessLine(s: Soak, serverIndex: number, line: LogLine): void {
  const a = parseAccessLine(line, Date.now());
  const key = accessKeyOf(serverIndex, a);
  const r = s.streams.byPort.get(key);
  if (r !== undefined && r.access === null) {
    r.access = a;
    return;
  }
  s.streams.access.park(key, a);
}

/** A visitor just learned its local port: index it, and claim a line that arrived first. */
export function onVisitorOpen(s: Soak, r: StreamRec): void {
  const key = accessKey(r.server, r.localPort);
  s.streams.byPort.set(key, r);
  const a = s.streams.access.claimByKey(key, r.startedAt);
  if (a !== null) r.access = a;
}

/** The target's account of one closed connection. */
export function onTargetResult(s: Soak, t: TargetResult): void {
  if (t.id < 0) return; // a connection closed before its header arrived (e.g. aborted at once)
  const r = s.streams.open.get(t.id);
  if (r === undefined) {
    s.streams.totals.lateTargetResults++;
    return;
  }
  r.target = t;
  r.targetOpen = false;
  r.targetProgressAt = Math.max(r.targetProgressAt, t.closedAt);
}

/** The target's periodic report of its open streams: [id, upRecv, downSent, lastEventAt]. */
export function onTargetProgress(s: Soak, items: [number, number, number, number][]): void {
  const seen = new Set<number>();
  for (const [id, up, down, last] of items) {
    const r = s.streams.open.get(id);
    if (r === undefined) continue;
    seen.add(id);
    r.targetOpen = true;
    r.targetUp = up;
    r.targetDown = down;
    r.targetProgressAt = Math.max(r.targetProgressAt, last);
  }
  for (const r of s.streams.open.values()) if (r.targetOpen && r.target === null && !seen.has(r.id)) r.targetOpen = false;
}

/** The proxied connection that the stream's access line names, if the proxy still knows it. */
function connFor(s: Soak, r: StreamRec): ProxiedConn | null {
  const id = r.access?.connectionId;
  if (id === undefined) return null;
  return s.proxies[r.server]?.byConnectionId.get(id) ?? null;
}

/** One line on a stream for a problem report: its shape, both ends, its access line and its connection's faults. */
export function describe(s: Soak, r: StreamRec): string {
  const h = r.h;
  const a = r.access;
  const c = connFor(s, r);
  const el = (t: number) => s.journal.elapsed(t);
  const closed = a?.connectionId !== undefined ? s.connClosedReason.get(a.connectionId) : undefined;
  return (
    `stream ${r.id} via server-${r.server} port ${r.localPort} (up ${h.upBytes} B ${r.visitorClose}, down ${h.downBytes} B ${h.targetClose}` +
    `${r.visitorAbortAfter !== NEVER ? `, visitor reset at ${r.visitorAbortAfter}` : ""}` +
    `${h.targetAbortAt !== NEVER ? `, target reset at ${h.targetAbortAt}` : ""}` +
    `${r.visitorSlowMs ? `, slow visitor ${r.visitorSlowMs} ms` : ""}${h.targetSlowMs ? `, slow target ${h.targetSlowMs} ms` : ""})` +
    ` open ${el(r.startedAt)}s–${r.closedAt ? `${el(r.closedAt)}s` : "…"}` +
    `; visitor up ${r.upSent} down ${r.downRecv} eof=${r.eof} fin=${r.finSent} err=${r.closeError ?? r.connectError ?? "-"}` +
    `; target ${r.target ? `up ${r.target.upRecv} down ${r.target.downSent} eof=${r.target.eof} err=${r.target.error ?? "-"}` : r.targetOpen ? `open up ${r.targetUp} down ${r.targetDown}` : "none"}` +
    `; access ${a ? `${a.reason} conn ${a.connectionId} ${a.host} in ${a.bytesIn} out ${a.bytesOut}${r.accessByTime ? " (matched by time)" : ""}` : "none"}` +
    `${c ? `; proxied conn #${c.n} faults [${c.faults.map((f) => `${f.kind}@${el(f.at)}s`).join(", ")}]` : ""}` +
    `${closed !== undefined ? `; server closed that connection: ${closed}` : ""}`
  );
}

/** The faults that could explain a failure of `r`. */
function faultFacts(s: Soak, r: StreamRec): FaultFacts {
  return {
    connFaults: connFor(s, r)?.faults ?? [],
    agentStops: s.faults.agentStops,
    outages: s.servers[r.server]?.outages ?? [],
  };
}

/** Counts a verdict in the totals and reports a problem. */
function record(s: Soak, r: StreamRec, v: Verdict): void {
  const totals = s.streams.totals;
  const t = r.target;
  switch (v.kind) {
    case "corrupt":
      totals.corruptStreams++;
      totals.corruptBytes += v.bytes;
      s.journal.problem(`CORRUPTION (first bad byte: visitor ${r.mismatchAt}, target ${t?.mismatchAt ?? "n/a"}): ${describe(s, r)}`);
      return;
    case "hang":
      return; // counted and described when flagged
    case "ok":
      totals.ok++;
      return;
    case "reset-as-designed":
      totals.abortsAsExpected++;
      return;
  }
  bump(totals.failReasons, `${(v.misses[0] as string).replace(/\d+/g, "N")} [server: ${r.access?.reason ?? "no access line"}]`);
  if (r.connectError !== null) totals.connectRefused++;
  const misses = v.misses.join("; ");
  if (v.kind === "unexplained") {
    totals.unexplained++;
    s.journal.problem(`UNEXPLAINED failure (${misses}): ${describe(s, r)}`);
  } else if (v.kind === "silent-truncation") {
    totals.silentTruncations++;
    s.journal.problem(`SILENT TRUNCATION on a ${v.fault.kind} path (${misses}): ${describe(s, r)}`);
  } else if (v.kind === "slow") {
    totals.slowFailures++;
    s.journal.problem(`SLOW FAILURE: ended ${v.latencyMs} ms after the ${v.fault.kind} (bound ${v.fault.bound} ms): ${describe(s, r)}`);
  } else {
    totals.failedExplained++;
    bump(totals.explainedBy, v.fault.kind);
    const lat = totals.failLatencies.get(v.fault.kind) ?? [];
    if (lat.length < 100_000) lat.push(v.latencyMs);
    totals.failLatencies.set(v.fault.kind, lat);
  }
}

/** Takes `r` out of the open streams, classifies it and counts the result. */
export function settle(s: Soak, r: StreamRec): void {
  s.streams.open.delete(r.id);
  // Only a reset connect can have reached the server (a refused one never did).
  if (r.access === null && r.connectError === "ECONNRESET") {
    const a = s.streams.access.claimByTime(r.server, r.startedAt, r.closedAt, SETTLE_WAIT_MS);
    if (a !== null) {
      r.access = a;
      r.accessByTime = true;
    }
  }
  if (r.localPort !== 0) {
    const key = accessKey(r.server, r.localPort);
    if (s.streams.byPort.get(key) === r) s.streams.byPort.delete(key);
  }
  s.streams.totals.bytesVerified += verifiedBytes(r);
  record(s, r, classify(r, faultFacts(s, r), s.limits));
}

function flagHang(s: Soak, r: StreamRec, why: string): void {
  r.hang = true;
  s.streams.totals.hangs++;
  s.journal.problem(`HANG (${why}): ${describe(s, r)}`);
}

/** Settles streams whose ends are both known (or given up on), and runs the hang watchdog (every 250 ms). */
export function watch(s: Soak): void {
  const now = Date.now();
  const { hangMs, hangKillMs } = s.limits;
  for (const r of [...s.streams.open.values()]) {
    if (r.closedAt !== 0) {
      const since = now - r.closedAt;
      const targetKnown = r.target !== null || (!r.targetOpen && since >= SETTLE_WAIT_MS);
      const accessKnown = r.access !== null || since >= SETTLE_WAIT_MS;
      const clean = r.target !== null && expectationsMissed(r).misses.length === 0;
      if (targetKnown && (accessKnown || clean)) {
        settle(s, r);
        continue;
      }
      if (r.targetOpen && since > hangKillMs * 2 && !r.hang) {
        // The visitor is long gone but the target's socket is still open: the agent never closed it.
        flagHang(s, r, "target side still open long after the visitor closed");
      }
    }
    const last = Math.max(r.lastProgressAt, r.targetProgressAt, r.startedAt);
    const stuck = r.closedAt === 0 || r.targetOpen;
    if (stuck && now - last > hangMs && !r.hang) flagHang(s, r, `no progress for ${now - last} ms`);
    if (r.hang && r.closedAt === 0 && !r.hangKilled && now - last > hangKillMs) {
      r.hangKilled = true;
      r.sock?.terminate();
    }
    if (r.hang && r.closedAt !== 0 && (!r.targetOpen || now - r.closedAt > hangKillMs * 3)) settle(s, r);
  }
}
