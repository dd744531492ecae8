/**
 * How an agent reaches a server: directly or through an HTTP CONNECT proxy (RFC 9110 §9.3.6, Basic proxy
 * authentication), then TLS or not, then a WebSocket upgrade for `wss://` / `ws://` servers (SPEC.md §8). One
 * deadline covers every step. The result is a {@link TunnelSocket} owned by the caller's owner, ready for the
 * handshake frame.
 */
import { getRandomValues } from "node:crypto";
import type { ProxyConfig } from "../config.ts";
import { TunnelError } from "../errors.ts";
import { HeadReader, connectRequest, field, hasToken, parseHead, upgradeRequest, type HttpHead } from "../protocol/http-upgrade.ts";
import { connect, startTls, type DialTls, type NetSocket, type SocketOwner } from "./tcp.ts";
import { acceptKey } from "./ws-listener.ts";
import { WsSocket, type TunnelSocket } from "./ws-socket.ts";

/** A server to dial: an address, the name it goes by (TLS, Host, the proxy's CONNECT), and WebSocket or not. */
export interface ServerTarget {
  host: string;
  port: number;
  /** The configured name when `host` is an address it resolved to. */
  name?: string | undefined;
  ws?: { tls: boolean; path: string } | undefined;
}

/** Options of {@link dialServer}. */
export interface DialOptions {
  target: ServerTarget;
  /** TLS to the server (raw TLS, or under the WebSocket for wss://); undefined: plaintext. */
  tls: DialTls | undefined;
  proxy: ProxyConfig | null;
  timeoutMs: number;
  /** Receives the connection's events once the promise resolved. */
  owner: SocketOwner;
  /** WebSocket: the largest message accepted from the server. */
  maxMessageBytes: number;
}

/** `host:port` with IPv6 in brackets. */
function authority(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Dials a server. Rejects with TunnelError: ERR_CONNECT_REFUSED / ERR_CONNECT_TIMEOUT / ERR_TLS as
 * transport/tcp.ts connect; ERR_PROXY_AUTH (the proxy answered 407, or 401 as tinyproxy does), ERR_PROXY (any other refusal, with the proxy's
 * status line; never the credentials); ERR_WEBSOCKET (the server or a reverse proxy did not upgrade: its status line).
 */
export async function dialServer(o: DialOptions): Promise<TunnelSocket> {
  const deadline = performance.now() + o.timeoutMs;
  const left = () => Math.max(1, deadline - performance.now());
  const { target } = o;
  const step = new Step();
  const name = o.tls?.serverName ?? target.name ?? target.host;
  if (o.proxy === null && !target.ws) {
    return connect({ host: target.host, port: target.port, tls: o.tls, timeoutMs: o.timeoutMs, owner: o.owner });
  }
  let socket: NetSocket;
  if (o.proxy === null) {
    socket = await connect({ host: target.host, port: target.port, tls: o.tls, timeoutMs: o.timeoutMs, owner: step });
  } else {
    socket = await throughProxy(o.proxy, authority(target.name ?? target.host, target.port), step, left);
    if (o.tls !== undefined) {
      socket = await startTls(socket, { host: name, port: target.port, tls: { ...o.tls, serverName: name }, timeoutMs: left(), owner: step });
    }
  }
  if (!target.ws) {
    socket.data.owner = o.owner;
    return socket;
  }
  const defaultPort = target.ws.tls ? 443 : 80;
  const hostHeader = target.port !== defaultPort ? authority(name, target.port) : name.includes(":") ? `[${name}]` : name;
  const key = Buffer.from(getRandomValues(new Uint8Array(16))).toString("base64");
  socket.write(upgradeRequest(hostHeader, target.ws.path, key));
  const { head, rest } = await step.read(socket, left(), "ERR_WEBSOCKET", "the server");
  const ok = head.second === "101" && hasToken(head, "upgrade", "websocket") && field(head, "sec-websocket-accept") === acceptKey(key);
  if (!ok) {
    socket.terminate();
    throw new TunnelError("ERR_WEBSOCKET", `WebSocket upgrade at ${target.ws.path} refused: ${head.line.slice(0, 200)}`);
  }
  const ws = new WsSocket(socket, "client", o.maxMessageBytes, socket.remoteAddress);
  socket.data.owner = ws;
  ws.data.owner = o.owner;
  if (rest.byteLength > 0) ws.onData(rest);
  return ws;
}

/** Connects to the proxy and asks it for a tunnel to `to`. Resolves with the plain socket to tunnel through. */
async function throughProxy(proxy: ProxyConfig, to: string, step: Step, left: () => number): Promise<NetSocket> {
  const where = `${authority(proxy.host, proxy.port)} (${proxy.source})`;
  let socket: NetSocket;
  try {
    socket = await connect({ host: proxy.host, port: proxy.port, tls: undefined, timeoutMs: left(), owner: step });
  } catch (e) {
    throw new TunnelError((e as TunnelError).code ?? "ERR_PROXY", `proxy ${where}: ${(e as Error).message}`, { cause: e });
  }
  const basic = proxy.user === null ? null : Buffer.from(`${proxy.user}:${proxy.password ?? ""}`).toString("base64");
  socket.write(connectRequest(to, basic));
  const { head, rest } = await step.read(socket, left(), "ERR_PROXY", `proxy ${where}`);
  const status = Number(head.second);
  const line = head.line.slice(0, 200);
  // 407 is the proxy's own status (RFC 9110 §15.5.8); tinyproxy answers a CONNECT with bad credentials 401.
  if (status === 407 || status === 401) {
    socket.terminate();
    throw new TunnelError("ERR_PROXY_AUTH", `proxy ${where} refused the credentials${proxy.user === null ? " (none given)" : ` of user "${proxy.user}"`}: ${line}`);
  }
  if (!(status >= 200 && status < 300) || rest.byteLength > 0) {
    socket.terminate();
    const ok = status >= 200 && status < 300;
    throw new TunnelError("ERR_PROXY", `proxy ${where} refused CONNECT ${to}: ${ok ? `bytes after its answer (${line})` : line}`);
  }
  return socket;
}

/** A socket owner that reads one HTTP response head (a proxy's or the server's upgrade answer). */
class Step implements SocketOwner {
  private reader = new HeadReader();
  private waiter: { resolve(r: { head: HttpHead; rest: Uint8Array }): void; fail(why: string): void } | null = null;

  /** Reads the next response head on `socket` within `timeoutMs`; `code` and `who` word the failures. */
  read(socket: NetSocket, timeoutMs: number, code: "ERR_PROXY" | "ERR_WEBSOCKET", who: string): Promise<{ head: HttpHead; rest: Uint8Array }> {
    this.reader = new HeadReader();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail("ERR_CONNECT_TIMEOUT", `${who} did not answer in time`), timeoutMs);
      const fail = (c: "ERR_PROXY" | "ERR_WEBSOCKET" | "ERR_CONNECT_TIMEOUT", why: string) => {
        clearTimeout(timer);
        this.waiter = null;
        socket.terminate();
        reject(new TunnelError(c, why));
      };
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          this.waiter = null;
          resolve(r);
        },
        fail: (why) => fail(code, `${who} ${why}`),
      };
    });
  }

  onData(chunk: Uint8Array): void {
    const w = this.waiter;
    if (w === null) return;
    const r = this.reader.push(chunk);
    if (r.kind === "oversized") return w.fail("sent an answer head over 8 KiB");
    if (r.kind === "more") return;
    const head = parseHead(r.head);
    if (head === null || !/^HTTP\/1\.[01]$/.test(head.first) || !/^\d{3}$/.test(head.second)) return w.fail(`did not answer with HTTP: ${JSON.stringify(r.head.slice(0, 80))}`);
    w.resolve({ head, rest: r.rest });
  }

  onDrain(): void {}

  onEnd(): void {
    this.waiter?.fail("closed the connection before answering");
  }

  onClose(): void {
    this.waiter?.fail("closed the connection before answering");
  }
}
