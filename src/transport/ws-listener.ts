/**
 * The server's WebSocket listener (TUNNEL_WS_LISTEN, SPEC.md §8): a TCP or TLS listener (transport/listener.ts)
 * whose connections first send an HTTP/1.1 upgrade request for the one path, within the handshake deadline counted
 * from TCP accept. Any other request is answered with a short HTTP error and closed: a plain request or another
 * path 404, a malformed upgrade 400, a wrong WebSocket version 426. An accepted upgrade gets its 101 and becomes a
 * {@link WsSocket}, owned from then on by whatever `accept` returns (the same handshake as on TUNNEL_LISTEN).
 *
 * Why not Bun.serve's WebSocket server: before a request head is complete Bun.serve closes a connection only after
 * its own fixed idle time (about 12 s measured, whatever `idleTimeout`), so a slow upgrade could not be held to
 * TUNNEL_HANDSHAKE_TIMEOUT_MS, and its sockets could not share the TCP listener's TLS reload.
 */
import { createHash } from "node:crypto";
import type { TLSOptions } from "bun";
import { HeadReader, field, hasToken, httpRefusal, parseHead, switchingProtocols, type HttpHead } from "../protocol/http-upgrade.ts";
import { clientAddress, inCidrs, type Cidr } from "../protocol/forwarded.ts";
import { listen, type Listener } from "./listener.ts";
import type { ConnectionCap } from "./connection-cap.ts";
import { IGNORING_OWNER, type NetSocket, type SocketOwner } from "./tcp.ts";
import { WsSocket } from "./ws-socket.ts";

/** RFC 6455 §1.3's GUID for Sec-WebSocket-Accept. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + WS_GUID).digest("base64");
}

/** A request the listener answered itself: the status sent (0: closed without an answer) and why. */
export interface WsRefusal {
  remote: string;
  status: number;
  reason: string;
}

/** Options of {@link listenWebSocket}. */
export interface WsListenOptions {
  host: string;
  port: number;
  tls?: TLSOptions | undefined;
  /** The only path upgraded. */
  path: string;
  /** Peers whose X-Forwarded-For / Forwarded name the client (protocol/forwarded.ts). */
  trustedProxies: readonly Cidr[];
  /** From TCP accept to a complete upgrade request, and on (what is left goes to `accept`). */
  deadlineMs: number;
  maxMessageBytes: number;
  /**
   * An upgrade request for the path arrived: the owner of the WebSocket (the handshake), given the time left of
   * the deadline, or a refusal answered `503` with `Retry-After` (pending-handshake limits, penalties).
   */
  accept(socket: WsSocket, remainingMs: number): SocketOwner | { retryAfterMs: number };
  /**
   * At TCP accept, before the upgrade request: a place among the pending handshakes for the peer (`direct`: not a
   * trusted proxy, so its own address counts), given back by calling the function returned (once the request was
   * answered, just before `accept`, or the connection closed); or a refusal, answered `503` (over TLS: closed).
   */
  hold?(peer: string, direct: boolean): (() => void) | { retryAfterMs: number };
  /** Every request the listener answered itself (or dropped at the deadline). */
  onRefused?(refusal: WsRefusal): void;
  onHandlerError?(error: Error): void;
  /** Open connections at most, shared with other listeners (see ListenOptions.cap). */
  cap?: ConnectionCap | undefined;
  /** Bind with SO_REUSEPORT (see ListenOptions.reusePort). */
  reusePort?: boolean;
}

/** Binds the WebSocket listener. Throws TunnelError ERR_LISTEN. */
export function listenWebSocket(opts: WsListenOptions): Listener {
  return listen({
    host: opts.host,
    port: opts.port,
    tls: opts.tls,
    cap: opts.cap,
    reusePort: opts.reusePort === true,
    ...(opts.onHandlerError ? { onHandlerError: opts.onHandlerError } : {}),
    accept: (raw) => {
      const held = opts.hold?.(raw.remoteAddress, !inCidrs(raw.remoteAddress, opts.trustedProxies)) ?? (() => {});
      if (typeof held === "function") return new WsUpgrade(raw, opts, held);
      opts.onRefused?.({ remote: raw.remoteAddress, status: opts.tls ? 0 : 503, reason: "busy or penalised (at accept)" });
      if (opts.tls) return null; // nothing may be written before the TLS handshake
      raw.write(httpRefusal(503, "Service Unavailable", [`Retry-After: ${Math.ceil(held.retryAfterMs / 1000)}`]));
      raw.end();
      return IGNORING_OWNER;
    },
  });
}

/** Owns a raw connection until its upgrade request was answered. */
class WsUpgrade implements SocketOwner {
  private readonly reader = new HeadReader();
  private readonly started = performance.now();
  private timer: ReturnType<typeof setTimeout> | null;
  private done = false;

  constructor(
    private readonly raw: NetSocket,
    private readonly opts: WsListenOptions,
    /** Gives back the pending-handshake place held since accept (idempotent). */
    private release: () => void,
  ) {
    this.timer = setTimeout(() => this.drop("no upgrade request before the deadline"), opts.deadlineMs);
  }

  onHandshake(ok: boolean): void {
    if (!ok) this.drop("TLS handshake failed");
  }

  onData(chunk: Uint8Array): void {
    if (this.done) return;
    const r = this.reader.push(chunk);
    if (r.kind === "more") return;
    if (r.kind === "oversized") return this.answer(431, "Request Header Fields Too Large", "request head over 8 KiB");
    const head = parseHead(r.head);
    if (head === null) return this.answer(400, "Bad Request", "not an HTTP request");
    this.upgrade(head, r.rest);
  }

  onDrain(): void {}

  onEnd(): void {
    this.drop("closed before the upgrade");
  }

  onClose(): void {
    this.finish();
  }

  private upgrade(head: HttpHead, rest: Uint8Array): void {
    const path = head.second.replace(/\?.*$/, "");
    const upgrading = hasToken(head, "upgrade", "websocket");
    if (!upgrading || path !== this.opts.path) return this.answer(404, "Not Found", upgrading ? `upgrade for path ${path.slice(0, 100)}` : "not an upgrade");
    const key = field(head, "sec-websocket-key");
    if (head.first !== "GET" || !hasToken(head, "connection", "upgrade") || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
      return this.answer(400, "Bad Request", "malformed WebSocket upgrade");
    }
    if (field(head, "sec-websocket-version") !== "13") {
      return this.answer(426, "Upgrade Required", "WebSocket version is not 13", ["Sec-WebSocket-Version: 13"]);
    }
    const remote = clientAddress(this.raw.remoteAddress, this.opts.trustedProxies, {
      forwarded: field(head, "forwarded"),
      xForwardedFor: field(head, "x-forwarded-for"),
    });
    const ws = new WsSocket(this.raw, "server", this.opts.maxMessageBytes, remote);
    const left = Math.max(1, this.opts.deadlineMs - (performance.now() - this.started));
    this.giveBack(); // the handshake holds its own place from here (by the forwarded address)
    const owner = this.opts.accept(ws, left);
    if ("retryAfterMs" in owner) {
      return this.answer(503, "Service Unavailable", "busy or penalised", [`Retry-After: ${Math.ceil(owner.retryAfterMs / 1000)}`], remote);
    }
    this.finish();
    const response = switchingProtocols(acceptKey(key));
    if (this.raw.write(response) !== response.length) return this.raw.terminate();
    this.raw.data.owner = ws;
    ws.data.owner = owner;
    if (rest.byteLength > 0) ws.onData(rest);
  }

  /** Answers with a short HTTP error and closes. */
  private answer(status: number, text: string, reason: string, extra: readonly string[] = [], remote = this.raw.remoteAddress): void {
    this.finish();
    this.raw.data.owner = IGNORING_OWNER;
    this.raw.write(httpRefusal(status, text, extra));
    this.raw.end();
    this.opts.onRefused?.({ remote, status, reason });
  }

  /** Closes without an answer (deadline, FIN, failed TLS). */
  private drop(reason: string): void {
    if (this.done) return;
    this.finish();
    this.raw.terminate();
    this.opts.onRefused?.({ remote: this.raw.remoteAddress, status: 0, reason });
  }

  private giveBack(): void {
    const r = this.release;
    this.release = () => {};
    r();
  }

  private finish(): void {
    this.giveBack();
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
