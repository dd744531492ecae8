/**
 * The gate in front of the server's handshake: {@link AuthPenalties} (sources that keep failing authentication are
 * refused for a while) and {@link refuseEarly} (a connection refused at accept, before any handshake).
 */
import { isIPv6 } from "node:net";
import { encodeHandshake } from "../protocol/handshake.ts";
import { HandshakeFlag, HandshakeStatus } from "../protocol/constants.ts";
import { IGNORING_OWNER, type NetSocket, type SocketOwner } from "../transport/tcp.ts";

/** Statuses that count as a failed authentication attempt for {@link AuthPenalties}. */
export const AUTH_FAILURE_STATUSES: ReadonlySet<number> = new Set([
  HandshakeStatus.AUTH_FAILED,
  HandshakeStatus.VALIDATOR_NOT_FOUND,
  HandshakeStatus.CLUSTER_NOT_EXIST,
]);
/** Sources remembered at most by {@link AuthPenalties} (the oldest are forgotten first). */
const MAX_PENALTY_ENTRIES = 65_536;

interface PenaltyEntry {
  /** Failures in the current window. */
  count: number;
  windowStart: number;
  /** Refused until this time (ms, Date.now clock). */
  until: number;
  /** Penalties served so far: each doubles the next. */
  strikes: number;
  last: number;
}

/** Settings of {@link AuthPenalties} (TUNNEL_AUTH_FAILURE_LIMIT etc.; limit 0 turns penalties off). */
export interface PenaltySettings {
  authFailureLimit: number;
  authFailureWindowMs: number;
  authPenaltyMs: number;
  authPenaltyMaxMs: number;
}

/**
 * Per-source penalties for failed authentication (after OpenSSH's PerSourcePenalties): `limit` failures from one
 * address within `window` → new connections from it are refused for `penalty`, doubling with each further penalty
 * up to `max`. A source is forgotten once it has been quiet for `window + max`. Bounded memory.
 */
export class AuthPenalties {
  private readonly entries = new Map<string, PenaltyEntry>();

  constructor(
    private readonly s: PenaltySettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a failed authentication from `ip` (an IPv6 address counts for its /64); returns the penalty (ms) it started, or 0. */
  failure(ip: string): number {
    if (this.s.authFailureLimit <= 0) return 0;
    ip = penaltySource(ip);
    const now = this.now();
    let e = this.entries.get(ip);
    if (e === undefined) {
      if (this.entries.size >= MAX_PENALTY_ENTRIES) this.prune(now);
      e = { count: 0, windowStart: now, until: 0, strikes: 0, last: now };
    } else {
      this.entries.delete(ip); // re-insert: the map stays in least-recently-failed order
      if (now - e.last > this.s.authFailureWindowMs + this.s.authPenaltyMaxMs) e.strikes = 0;
    }
    this.entries.set(ip, e);
    if (now - e.windowStart > this.s.authFailureWindowMs) {
      e.count = 0;
      e.windowStart = now;
    }
    e.count++;
    e.last = now;
    if (e.count < this.s.authFailureLimit) return 0;
    const ms = Math.min(this.s.authPenaltyMaxMs, this.s.authPenaltyMs * 2 ** Math.min(e.strikes, 30));
    e.until = now + ms;
    e.strikes++;
    e.count = 0;
    e.windowStart = now;
    return ms;
  }

  /** How long `ip` (its /64, for IPv6) is still refused (ms); 0 if it is not. */
  remainingMs(ip: string): number {
    const e = this.entries.get(penaltySource(ip));
    if (e === undefined) return 0;
    const left = e.until - this.now();
    return left > 0 ? Math.ceil(left) : 0;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.entries.size;
  }

  private prune(now: number): void {
    const forgetAfter = this.s.authFailureWindowMs + this.s.authPenaltyMaxMs;
    for (const [ip, e] of this.entries) if (now - e.last > forgetAfter && e.until <= now) this.entries.delete(ip);
    // Still nearly full: forget the least recently failed eighth at once (amortised O(1) per failure).
    const keep = MAX_PENALTY_ENTRIES - (MAX_PENALTY_ENTRIES >> 3);
    for (const ip of this.entries.keys()) {
      if (this.entries.size <= keep) break;
      this.entries.delete(ip);
    }
  }
}

/** A SERVER_BUSY response with its retry time (SPEC.md §1.2). */
function busyResponse(retryAfterMs: number): Uint8Array {
  return encodeHandshake({ flag: HandshakeFlag.INIT_RESPONSE, body: { status: HandshakeStatus.SERVER_BUSY, retry_after_ms: Math.ceil(retryAfterMs) } });
}

/**
 * Refuses a connection at accept (pending-handshake limits, penalties, shutdown): a plaintext one is answered
 * SERVER_BUSY with `retryAfterMs` and closed; a TLS one is closed at once (nothing can be written before its TLS
 * handshake; see refuseAfterTls for the answered form). Returns the owner for `accept` (null: kill).
 */
export function refuseEarly(socket: NetSocket, tls: boolean, retryAfterMs: number): SocketOwner | null {
  if (tls) return null;
  socket.write(busyResponse(retryAfterMs));
  socket.end();
  return IGNORING_OWNER;
}

/** How long a TLS connection refused at accept may take over its TLS handshake before it is closed (ms; at most half the handshake deadline). */
export const TLS_REFUSAL_TIMEOUT_MS = 1_000;

/**
 * Refuses a TLS connection with an answer: the TLS handshake completes, then SERVER_BUSY with `retryAfterMs` (less
 * the time the TLS handshake took) and close, so the agent learns when to come back instead of backing off blindly.
 * Costs a TLS handshake. Closed without an answer after `timeoutMs`; `done` is called once when the socket is gone.
 */
export function refuseAfterTls(socket: NetSocket, retryAfterMs: number, timeoutMs: number, done: () => void): SocketOwner {
  const started = performance.now();
  const timer = setTimeout(() => socket.terminate(), timeoutMs);
  return {
    onHandshake(ok) {
      if (!ok) return void socket.terminate();
      socket.write(busyResponse(Math.max(0, retryAfterMs - (performance.now() - started))));
      socket.end();
    },
    onData() {},
    onDrain() {},
    onEnd() {},
    onClose() {
      clearTimeout(timer);
      done();
    },
  };
}

/**
 * The source a penalty counts against: an IPv4 address itself (also when IPv4-mapped, `::ffff:192.0.2.1`), and for
 * IPv6 its /64 (one host usually has a whole /64, so one address per attempt is free there). Anything else as is.
 */
export function penaltySource(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1] as string;
  if (!isIPv6(ip)) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = ip.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = ip.includes("::") ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
