/**
 * The agent-facing listeners: TUNNEL_LISTEN (TCP or TLS) and TUNNEL_WS_LISTEN (WebSocket, SPEC.md §8). Both go
 * through one gate (auth penalties, admission by measured capacity within the pending-handshake caps per server and
 * per client address: over WebSocket the address a trusted proxy forwarded) into the same PendingHandshake, whose
 * success goes to `admission`.
 */
import type { TLSOptions } from "bun";
import type { ClusterConfig, ServerConfig } from "../config.ts";
import { ReplayGuard } from "../auth/credential.ts";
import { HandshakeStatus } from "../protocol/constants.ts";
import { wsMaxMessageBytes } from "../protocol/ws-frame.ts";
import { listen, type Listener } from "../transport/listener.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";
import { listenWebSocket } from "../transport/ws-listener.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import { logger } from "../log.ts";
import { PendingHandshake, type HandshakeContext } from "./handshake.ts";
import { AuthPenalties, TLS_REFUSAL_TIMEOUT_MS, refuseAfterTls, refuseEarly } from "./gate.ts";
import { HandshakeLoad } from "./handshake-load.ts";
import type { ConnectionCap } from "../transport/connection-cap.ts";
import type { Admission } from "./admission.ts";
import type { MosnAgents } from "./mosn-agents.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("server");

/** A TCP or TLS socket of TUNNEL_LISTEN (not a WebSocket connection). */
function isNetSocket(socket: TunnelSocket): socket is NetSocket {
  return socket.transport !== "websocket";
}

/** The gate both listeners share. `admit` returns the handshake owner, or the retry delay of a refusal. */
export interface AgentGate {
  readonly ctx: HandshakeContext;
  /** Pending handshakes and the measured capacity (server/handshake-load.ts). */
  readonly load: HandshakeLoad;
  admit(socket: TunnelSocket, opts?: { timeoutMs?: number; tlsDone?: boolean }): PendingHandshake | { retryAfterMs: number };
  /**
   * A place among the pending handshakes for a WebSocket connection still sending its upgrade request (`direct`:
   * `ip` is the client's own, so its penalty and per-address cap apply; else only the total cap): the function
   * that gives it back, or the retry delay of a refusal.
   */
  hold(ip: string, direct: boolean): (() => void) | { retryAfterMs: number };
  /** Shutting down: from now on every new connection is refused with a retry time (the listeners stay open). */
  refuseAll(): void;
  /** Stops measuring (server closed). */
  stop(): void;
}

/** The shortest retry time given while shutting down (ms): a replacement process is usually up by then. */
const SHUTDOWN_RETRY_MS = 250;

/** The gate: penalties and pending-handshake admission, then a PendingHandshake whose outcome goes to `admission`. */
export function agentGate(
  config: ServerConfig,
  clusters: ReadonlyMap<string, ClusterConfig>,
  stats: ServerStats,
  admission: Admission,
  mosn: MosnAgents,
): AgentGate {
  const load = new HandshakeLoad({
    maxPending: config.maxPendingHandshakes,
    maxPendingPerIp: config.maxPendingHandshakesPerIp,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
  });
  let closing = false;
  let nextProxied = 0;
  /** When each admitted connection was admitted (performance.now()): handshake durations feed the load. */
  const admittedAt = new WeakMap<TunnelSocket, number>();
  const answered = (socket: TunnelSocket): void => load.answered(performance.now() - (admittedAt.get(socket) ?? performance.now()));
  const penalties = new AuthPenalties(config);
  const ctx: HandshakeContext = {
    config,
    clusters,
    replay: new ReplayGuard(),
    penalties,
    onSettled: (socket) => load.settled(socket.remoteAddress),
    onRefused(socket, status, error) {
      if (status !== null) answered(socket);
      stats.handshake(status);
      log.warn("agent handshake refused", { remote: socket.remoteAddress, status, code: error.code, reason: error.message, ...(socket.transport ? { transport: socket.transport } : {}) });
    },
    onAccepted(socket, accepted) {
      answered(socket);
      stats.handshake(HandshakeStatus.SUCCESS);
      admission.admit(socket, accepted);
    },
    // Raw connections come only from TUNNEL_LISTEN (PendingHandshake never takes one over a WebSocket).
    onRawAccepted(socket, accepted) {
      answered(socket);
      stats.handshake(HandshakeStatus.SUCCESS);
      if (isNetSocket(socket)) mosn.admit(socket, accepted);
      else socket.terminate();
    },
    onGracefulClose: (socket, body) => (isNetSocket(socket) ? mosn.gracefulClose(socket, body) : socket.terminate()),
  };
  return {
    ctx,
    load,
    admit(socket, opts) {
      if (closing) {
        stats.limitHit("shutting_down");
        return { retryAfterMs: Math.max(SHUTDOWN_RETRY_MS, load.retryAfterMs()) };
      }
      const ip = socket.remoteAddress;
      const penaltyMs = penalties.remainingMs(ip);
      if (penaltyMs > 0) {
        stats.limitHit("auth_penalty");
        return { retryAfterMs: penaltyMs };
      }
      if (!load.tryAdmit(ip)) {
        stats.limitHit("pending_handshakes");
        return { retryAfterMs: load.retryAfterMs() };
      }
      admittedAt.set(socket, performance.now());
      return new PendingHandshake(socket, ctx, opts);
    },
    hold(ip, direct) {
      if (closing) {
        stats.limitHit("shutting_down");
        return { retryAfterMs: Math.max(SHUTDOWN_RETRY_MS, load.retryAfterMs()) };
      }
      // Behind a trusted proxy the address is not known yet: a key of its own, so only the total cap applies.
      return holdPlace(load, penalties, stats, direct ? ip : `\u0000proxied-${nextProxied++}`, direct);
    },
    refuseAll() {
      closing = true;
    },
    stop: () => load.stop(),
  };
}

/** {@link AgentGate.hold} once not shutting down: the penalty (a direct address), then a slot under `key`. */
function holdPlace(load: HandshakeLoad, penalties: AuthPenalties, stats: ServerStats, key: string, direct: boolean): (() => void) | { retryAfterMs: number } {
  const penaltyMs = direct ? penalties.remainingMs(key) : 0;
  if (penaltyMs > 0) {
    stats.limitHit("auth_penalty");
    return { retryAfterMs: penaltyMs };
  }
  if (!load.tryAdmit(key)) {
    stats.limitHit("pending_handshakes");
    return { retryAfterMs: load.retryAfterMs() };
  }
  let held = true;
  return () => {
    if (held) load.settled(key);
    held = false;
  };
}

/** TLS refusals answered after the TLS handshake at once, at most (beyond: closed at accept). */
const MAX_TLS_ANSWERS = 256;

/**
 * TUNNEL_LISTEN: a refused connection is answered SERVER_BUSY with its retry time; over TLS after the TLS handshake
 * while the server is not overloaded and fewer than MAX_TLS_ANSWERS are in progress, else closed at accept (refuseEarly).
 */
export function listenForAgents(config: ServerConfig, tls: TLSOptions | undefined, gate: AgentGate, cap?: ConnectionCap): Listener {
  let answering = 0;
  const answerTls = (): boolean => answering < MAX_TLS_ANSWERS && !gate.load.overloaded;
  return listen({
    host: config.listen.host,
    port: config.listen.port,
    tls,
    cap,
    reusePort: config.reusePort,
    onHandlerError: (e) => log.error("agent socket handler failed", { error: e }),
    accept(socket): SocketOwner | null {
      const owner = gate.admit(socket);
      if (!("retryAfterMs" in owner)) return owner;
      if (tls === undefined || !answerTls()) return refuseEarly(socket, tls !== undefined, owner.retryAfterMs);
      answering++;
      return refuseAfterTls(socket, owner.retryAfterMs, Math.min(config.handshakeTimeoutMs / 2, TLS_REFUSAL_TIMEOUT_MS), () => answering--);
    },
  });
}

/**
 * TUNNEL_WS_LISTEN (null when off): the upgrade request within TUNNEL_HANDSHAKE_TIMEOUT_MS of accept, then the gate
 * (a refusal is a 503 with Retry-After) and the handshake in what is left of that deadline.
 */
export function listenForWsAgents(config: ServerConfig, tls: TLSOptions | undefined, gate: AgentGate, cap?: ConnectionCap): Listener | null {
  if (config.wsListen === null) return null;
  return listenWebSocket({
    host: config.wsListen.host,
    port: config.wsListen.port,
    tls: config.wsTls ? tls : undefined,
    path: config.wsPath,
    trustedProxies: config.trustedProxies,
    deadlineMs: config.handshakeTimeoutMs,
    maxMessageBytes: wsMaxMessageBytes(config.maxFrameBytes),
    cap,
    reusePort: config.reusePort,
    accept: (ws, remainingMs) => gate.admit(ws, { timeoutMs: remainingMs, tlsDone: true }),
    hold: (ip, direct) => gate.hold(ip, direct),
    onRefused: (r) => log.debug("WebSocket request refused", { remote: r.remote, status: r.status, reason: r.reason }),
    onHandlerError: (e) => log.error("agent WebSocket handler failed", { error: e }),
  });
}
