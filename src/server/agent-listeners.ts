/**
 * The agent-facing listeners: TUNNEL_LISTEN (TCP or TLS) and TUNNEL_WS_LISTEN (WebSocket, SPEC.md §8). Both go
 * through one gate (auth penalties, pending-handshake caps per server and per client address: over WebSocket the
 * address a trusted proxy forwarded) into the same PendingHandshake, whose success goes to `admission`.
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
import { AuthPenalties, refuseEarly } from "./gate.ts";
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
  admit(socket: TunnelSocket, opts?: { timeoutMs?: number; tlsDone?: boolean }): PendingHandshake | { retryAfterMs: number };
  /**
   * A place among the pending handshakes for a WebSocket connection still sending its upgrade request (`direct`:
   * `ip` is the client's own, so its penalty and per-address cap apply; else only the total cap): the function
   * that gives it back, or the retry delay of a refusal.
   */
  hold(ip: string, direct: boolean): (() => void) | { retryAfterMs: number };
}

/** The gate: penalties and pending-handshake caps, then a PendingHandshake whose outcome goes to `admission`. */
export function agentGate(
  config: ServerConfig,
  clusters: ReadonlyMap<string, ClusterConfig>,
  stats: ServerStats,
  admission: Admission,
  mosn: MosnAgents,
): AgentGate {
  let pendingTotal = 0;
  const pendingByIp = new Map<string, number>();
  const release = (socket: TunnelSocket): void => releaseIp(socket.remoteAddress, true);
  const releaseIp = (ip: string, perIp: boolean): void => {
    pendingTotal--;
    if (!perIp) return;
    const n = (pendingByIp.get(ip) ?? 1) - 1;
    if (n <= 0) pendingByIp.delete(ip);
    else pendingByIp.set(ip, n);
  };
  const penalties = new AuthPenalties(config);
  const ctx: HandshakeContext = {
    config,
    clusters,
    replay: new ReplayGuard(),
    penalties,
    onSettled: release,
    onRefused(socket, status, error) {
      stats.handshake(status);
      log.warn("agent handshake refused", { remote: socket.remoteAddress, status, code: error.code, reason: error.message, ...(socket.transport ? { transport: socket.transport } : {}) });
    },
    onAccepted(socket, accepted) {
      stats.handshake(HandshakeStatus.SUCCESS);
      admission.admit(socket, accepted);
    },
    // Raw connections come only from TUNNEL_LISTEN (PendingHandshake never takes one over a WebSocket).
    onRawAccepted(socket, accepted) {
      stats.handshake(HandshakeStatus.SUCCESS);
      if (isNetSocket(socket)) mosn.admit(socket, accepted);
      else socket.terminate();
    },
    onGracefulClose: (socket, body) => (isNetSocket(socket) ? mosn.gracefulClose(socket, body) : socket.terminate()),
  };
  return {
    ctx,
    admit(socket, opts) {
      const ip = socket.remoteAddress;
      const perIp = pendingByIp.get(ip) ?? 0;
      const penaltyMs = penalties.remainingMs(ip);
      if (penaltyMs > 0) {
        stats.limitHit("auth_penalty");
        return { retryAfterMs: penaltyMs };
      }
      if (pendingTotal >= config.maxPendingHandshakes || perIp >= config.maxPendingHandshakesPerIp) {
        stats.limitHit("pending_handshakes");
        return { retryAfterMs: 1000 };
      }
      pendingTotal++;
      pendingByIp.set(ip, perIp + 1);
      return new PendingHandshake(socket, ctx, opts);
    },
    hold(ip, direct) {
      const penaltyMs = direct ? penalties.remainingMs(ip) : 0;
      if (penaltyMs > 0) {
        stats.limitHit("auth_penalty");
        return { retryAfterMs: penaltyMs };
      }
      const perIp = direct ? (pendingByIp.get(ip) ?? 0) : 0;
      if (pendingTotal >= config.maxPendingHandshakes || perIp >= config.maxPendingHandshakesPerIp) {
        stats.limitHit("pending_handshakes");
        return { retryAfterMs: 1000 };
      }
      pendingTotal++;
      if (direct) pendingByIp.set(ip, perIp + 1);
      let held = true;
      return () => {
        if (held) releaseIp(ip, direct);
        held = false;
      };
    },
  };
}

/** TUNNEL_LISTEN: a refused connection is answered SERVER_BUSY (plaintext) or closed (TLS) at accept. */
export function listenForAgents(config: ServerConfig, tls: TLSOptions | undefined, gate: AgentGate): Listener {
  return listen({
    host: config.listen.host,
    port: config.listen.port,
    tls,
    onHandlerError: (e) => log.error("agent socket handler failed", { error: e }),
    accept(socket): SocketOwner | null {
      const owner = gate.admit(socket);
      return "retryAfterMs" in owner ? refuseEarly(socket, tls !== undefined, owner.retryAfterMs) : owner;
    },
  });
}

/**
 * TUNNEL_WS_LISTEN (null when off): the upgrade request within TUNNEL_HANDSHAKE_TIMEOUT_MS of accept, then the gate
 * (a refusal is a 503 with Retry-After) and the handshake in what is left of that deadline.
 */
export function listenForWsAgents(config: ServerConfig, tls: TLSOptions | undefined, gate: AgentGate): Listener | null {
  if (config.wsListen === null) return null;
  return listenWebSocket({
    host: config.wsListen.host,
    port: config.wsListen.port,
    tls: config.wsTls ? tls : undefined,
    path: config.wsPath,
    trustedProxies: config.trustedProxies,
    deadlineMs: config.handshakeTimeoutMs,
    maxMessageBytes: wsMaxMessageBytes(config.maxFrameBytes),
    accept: (ws, remainingMs) => gate.admit(ws, { timeoutMs: remainingMs, tlsDone: true }),
    hold: (ip, direct) => gate.hold(ip, direct),
    onRefused: (r) => log.debug("WebSocket request refused", { remote: r.remote, status: r.status, reason: r.reason }),
    onHandlerError: (e) => log.error("agent WebSocket handler failed", { error: e }),
  });
}
