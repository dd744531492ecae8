/**
 * The soak's failure classifier: given what both ends of one stream saw, the server's access-log line for it and
 * the faults of the run, decides whether the stream passed, failed on a faulted path within its bound, or is a
 * problem (corruption, unexplained failure, silent truncation, slow failure). The rule, also in RELIABILITY.md:
 * a failure must be explained by a fault on its path:
 *   1. its access-log line names a connection that the proxy cut or blackholed before the stream ended; or
 *   2. that line names an agent that was SIGTERMed (draining) while the stream was open; or
 *   3. its server was SIGKILLed while the stream was open; or
 *   4. it has no access-log line and started while its server was down or before every agent had reconnected.
 * An explained failure must also have ended within its fault's bound, counted from the fault or the stream's start,
 * whichever is later. A side that saw a clean FIN with bytes missing is a silent truncation, accepted only when a
 * server was SIGKILLed (the kernel then sends the FIN). Pure: no I/O, no clock.
 */
import type { AccessLine } from "./access.ts";
import type { ConnFault } from "./proxy.ts";
import { NEVER, type StreamHeader, type TargetResult } from "./wire.ts";

/** What the classifier needs to know about one stream: what the visitor and the target saw, and its access line. */
export interface StreamOutcome {
  /** Index of the server the visitor connected to. */
  server: number;
  h: StreamHeader;
  /** The visitor resets once upSent + downRecv reaches this (NEVER = does not). */
  visitorAbortAfter: number;
  /** Wall-clock ms: the visitor started connecting; its socket closed (0 while open). */
  startedAt: number;
  closedAt: number;
  /** Payload bytes the visitor produced / received. */
  upSent: number;
  downRecv: number;
  /** Offset of the first bad byte the visitor received; -1 if none. */
  mismatchAt: number;
  /** How the visitor's socket closed: an error code (ECONNRESET, "write failed (reset)"), or null if cleanly. */
  closeError: string | null;
  /** The connect itself failed (ECONNREFUSED, ECONNRESET); null if it connected. */
  connectError: string | null;
  /** The hang watchdog reset the visitor. */
  hangKilled: boolean;
  /** The watchdog flagged the stream as a hang (counted when flagged, not here). */
  hang: boolean;
  /** The target reported the stream as open and has no result for it yet. */
  targetOpen: boolean;
  /** The target's account of the stream, once its socket closed. */
  target: TargetResult | null;
  /** The server's access-log line for the stream, once matched. */
  access: AccessLine | null;
}

/** A server's outage: SIGKILLed at `killAt`, every agent back at `backAt` (+500 ms; 0 while still out). */
export interface Outage {
  killAt: number;
  backAt: number;
}

/** An agent SIGTERMed (draining) at `at`, exited at `exitAt` (0 while still running). */
export interface AgentStop {
  agent: string;
  at: number;
  exitAt: number;
}

/** The faults that could explain a failure of one stream. */
export interface FaultFacts {
  /** Faults of the proxied connection named by the stream's access line ([] if none or unknown). */
  connFaults: readonly ConnFault[];
  /** Every agent drain of the run. */
  agentStops: readonly AgentStop[];
  /** The outages of the stream's server. */
  outages: readonly Outage[];
}

/** How long after its fault (or its start, if later) a failed stream may end, per fault, in ms. */
export interface FaultBounds {
  /** A cut connection, or a visitor that arrived while its server was down. */
  cutMs: number;
  /** A server SIGKILLed while the stream was open. */
  killMs: number;
  /** A blackholed connection: only the heartbeat timeout notices it. */
  blackholeMs: number;
  /** An agent draining after SIGTERM. */
  agentMs: number;
}

/** The fault that explains a failure. */
export interface Explanation {
  kind: "cut" | "blackhole" | "agent-restart" | "server-kill" | "server-down";
  /** Wall-clock ms of the fault (for "server-down": the stream's start). */
  at: number;
  /** Its bound, ms. */
  bound: number;
}

/** The classifier's decision for one settled stream. `misses` lists every expectation the stream did not meet. */
export type Verdict =
  | { kind: "corrupt"; bytes: number }
  | { kind: "hang" }
  | { kind: "ok" }
  /** A deliberate reset (by the visitor or the target) behaved as designed. */
  | { kind: "reset-as-designed" }
  | { kind: "unexplained"; misses: string[] }
  | { kind: "silent-truncation"; misses: string[]; fault: Explanation }
  | { kind: "slow"; misses: string[]; fault: Explanation; latencyMs: number }
  | { kind: "explained"; misses: string[]; fault: Explanation; latencyMs: number };

function visitorMisses(r: StreamOutcome, misses: string[]): boolean {
  const h = r.h;
  if (r.hangKilled) misses.push("visitor reset by the hang watchdog");
  else if (r.visitorAbortAfter !== NEVER) {
    // We reset it ourselves: nothing to expect here.
  } else if (h.targetAbortAt !== NEVER) {
    if (r.closeError === null) {
      misses.push(`visitor saw a clean end after the target reset (${r.downRecv}/${h.downBytes} B)`);
      return true;
    }
  } else if (r.closeError !== null) {
    misses.push(`visitor ${r.closeError} at ${r.downRecv}/${h.downBytes} B down, ${r.upSent}/${h.upBytes} B up`);
  } else if (r.downRecv < h.downBytes) {
    misses.push(`visitor clean end with ${r.downRecv}/${h.downBytes} B`);
    return true;
  }
  return false;
}

function targetMisses(r: StreamOutcome, misses: string[]): boolean {
  const h = r.h;
  const t = r.target;
  const visitorAbort = r.visitorAbortAfter !== NEVER;
  if (h.targetAbortAt !== NEVER) {
    // The target reset it itself.
  } else if (t === null) {
    if (!visitorAbort) misses.push(r.targetOpen ? "target still open" : "the target never saw the stream");
  } else if (t.idleKilled) {
    misses.push("target side idle-killed");
  } else if (visitorAbort) {
    if (t.error === null && t.upRecv < h.upBytes) {
      misses.push(`target saw a clean end after the visitor reset (${t.upRecv}/${h.upBytes} B)`);
      return true;
    }
  } else if (t.error !== null) {
    misses.push(`target ${t.error} at ${t.upRecv}/${h.upBytes} B up, ${t.downSent}/${h.downBytes} B down`);
  } else if (t.upRecv < h.upBytes || !t.eof) {
    misses.push(`target clean end with ${t.upRecv}/${h.upBytes} B`);
    return true;
  } else if (t.downSent < h.downBytes) misses.push(`target wrote only ${t.downSent}/${h.downBytes} B`);
  return false;
}

/**
 * Why a stream is not a clean success ([] if it is), visitor side first; `silentTruncation` if a side saw a clean
 * end with bytes missing. A failed connect is the only miss of its stream.
 */
export function expectationsMissed(r: StreamOutcome): { misses: string[]; silentTruncation: boolean } {
  const misses: string[] = [];
  if (r.connectError !== null) return { misses: [`connect: ${r.connectError}`], silentTruncation: false };
  const visitorTruncated = visitorMisses(r, misses);
  const targetTruncated = targetMisses(r, misses);
  return { misses, silentTruncation: visitorTruncated || targetTruncated };
}

/** When the stream ended: the later of the visitor's and the target's close (wall-clock ms). */
export function streamEnd(r: StreamOutcome): number {
  return Math.max(r.closedAt, r.target?.closedAt ?? 0);
}

/** The first cut or blackhole in `faults` at or before `t`; null if none. */
export function destructiveFault(faults: readonly ConnFault[], t: number): ConnFault | null {
  for (const f of faults) if ((f.kind === "cut" || f.kind === "blackhole") && f.at <= t) return f;
  return null;
}

/**
 * The fault that explains a failure of `r`, which ended at `end`; null if none does. In order: the stream's
 * connection was cut or blackholed before the stream ended; its agent was draining (SIGTERM) while it was open; its
 * server was killed while it was open; it has no access-log line and started while its server was down or before
 * every agent had reconnected to the restarted server.
 */
export function explain(r: StreamOutcome, end: number, facts: FaultFacts, bounds: FaultBounds): Explanation | null {
  const f = destructiveFault(facts.connFaults, end);
  if (f !== null) return f.kind === "cut" ? { kind: "cut", at: f.at, bound: bounds.cutMs } : { kind: "blackhole", at: f.at, bound: bounds.blackholeMs };
  const host = r.access?.host;
  if (host !== undefined) {
    for (const s of facts.agentStops) {
      if (s.agent === host && s.at <= end && (s.exitAt === 0 || s.exitAt >= r.startedAt)) return { kind: "agent-restart", at: s.at, bound: bounds.agentMs };
    }
  }
  for (const o of facts.outages) if (o.killAt >= r.startedAt && o.killAt <= end) return { kind: "server-kill", at: o.killAt, bound: bounds.killMs };
  if (r.access === null) {
    for (const o of facts.outages) {
      if (r.startedAt >= o.killAt && r.startedAt <= (o.backAt === 0 ? Infinity : o.backAt)) return { kind: "server-down", at: r.startedAt, bound: bounds.cutMs };
    }
  }
  return null;
}

/** Payload bytes of `r` that arrived intact at either end (up to the first bad byte on each side). */
export function verifiedBytes(r: StreamOutcome): number {
  const t = r.target;
  const down = r.mismatchAt >= 0 ? r.mismatchAt : r.downRecv;
  const up = t === null ? 0 : t.mismatchAt >= 0 ? t.mismatchAt : t.upRecv;
  return Math.max(0, down + up);
}

/** Bytes from the first bad byte on, both ends together (at least 1 for a corrupt stream); 0 if none is bad. */
export function corruptBytes(r: StreamOutcome): number {
  const t = r.target;
  if (r.mismatchAt < 0 && (t === null || t.mismatchAt < 0)) return 0;
  const bad = (r.mismatchAt >= 0 ? r.downRecv - r.mismatchAt : 0) + (t !== null && t.mismatchAt >= 0 ? t.upRecv - t.mismatchAt : 0);
  return Math.max(1, bad);
}

/**
 * Classifies a settled stream: corrupt (any bad byte, whatever else happened), hang (flagged by the watchdog), ok,
 * reset as designed, or a failure, which is unexplained, a silent truncation outside a server kill, slow (ended
 * later than its fault's bound) or explained.
 */
export function classify(r: StreamOutcome, facts: FaultFacts, bounds: FaultBounds): Verdict {
  const bad = corruptBytes(r);
  if (bad > 0) return { kind: "corrupt", bytes: bad };
  if (r.hang) return { kind: "hang" };
  const { misses, silentTruncation } = expectationsMissed(r);
  if (misses.length === 0) return { kind: r.visitorAbortAfter !== NEVER || r.h.targetAbortAt !== NEVER ? "reset-as-designed" : "ok" };
  const end = streamEnd(r);
  const fault = explain(r, end, facts, bounds);
  if (fault === null) return { kind: "unexplained", misses };
  if (silentTruncation && fault.kind !== "server-kill" && fault.kind !== "server-down") return { kind: "silent-truncation", misses, fault };
  const latencyMs = end - Math.max(fault.at, r.startedAt);
  if (latencyMs > fault.bound) return { kind: "slow", misses, fault, latencyMs };
  return { kind: "explained", misses, fault, latencyMs };
}
