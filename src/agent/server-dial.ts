/**
 * How a connection slot reaches its server: the slot context shared by an agent's slots, the server's label, and the
 * dial itself (transport/dial.ts: direct or through the proxy, TLS or not, WebSocket or not).
 */
import type { TLSOptions } from "bun";
import type { AgentConfig, ProxyConfig, WsEndpoint } from "../config.ts";
import { isTunnelError, type ErrorCode } from "../errors.ts";
import { wsMaxMessageBytes } from "../protocol/ws-frame.ts";
import { dialServer } from "../transport/dial.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import type { Services } from "./services.ts";
import type { AgentStats } from "./stats.ts";

/** Dial failures logged with their code. */
const DIAL_CODES: readonly ErrorCode[] = ["ERR_TLS", "ERR_PROXY_AUTH", "ERR_PROXY", "ERR_WEBSOCKET"];

/** A server's label in logs, status and metrics: `host:port`, or the WebSocket URL. */
export function serverLabel(host: string, port: number, ws: WsEndpoint | undefined): string {
  if (ws === undefined) return `${host}:${port}`;
  return `${ws.tls ? "wss" : "ws"}://${host.includes(":") ? `[${host}]` : host}:${port}${ws.path}`;
}

/** Shared by every slot of one agent. */
export interface SlotContext {
  readonly config: AgentConfig;
  readonly services: Services;
  readonly instance: string;
  readonly tls: TLSOptions | undefined;
  readonly random: () => number;
  readonly stats: AgentStats;
  /** The HTTP CONNECT proxy for this server (null: direct). */
  readonly proxy: ProxyConfig | null;
}

/** How a slot reaches its server besides host and port: the configured name (for TLS, Host, CONNECT), WebSocket. */
export interface ServerVia {
  name?: string | undefined;
  ws?: WsEndpoint | undefined;
}

/** Dials the server of a slot for its handshake owner `owner` (see transport/dial.ts dialServer for the errors). */
export function dialSlot(ctx: SlotContext, host: string, port: number, via: ServerVia, owner: SocketOwner): Promise<TunnelSocket> {
  return dialServer({
    target: { host, port, name: via.name, ws: via.ws },
    tls: ctx.tls,
    proxy: ctx.proxy,
    timeoutMs: ctx.config.connectTimeoutMs,
    owner,
    maxMessageBytes: wsMaxMessageBytes(ctx.config.maxFrameBytes),
  });
}

/** The code a dial failure is logged with, if it is one of {@link DIAL_CODES}. */
export function dialFailureCode(e: unknown): ErrorCode | undefined {
  return DIAL_CODES.find((c) => isTunnelError(e, c));
}
