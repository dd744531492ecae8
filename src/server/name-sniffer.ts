/**
 * The owner of a visitor socket on a listen address shared by routes with names, until its route is known: reads
 * the TLS ClientHello (`sni`) or the HTTP/1.x request head (`host`) with the protocol/ decoders, within
 * TUNNEL_HANDSHAKE_TIMEOUT_MS and their byte bounds, then either hands the socket to a stream on the matched route,
 * whose first DATA are the bytes read here, unchanged (small reads gathered into buffers of our own: a visitor
 * trickling one byte per read must not make us hold an object per byte), or refuses the visitor with a defined
 * answer (README "Routing by name"). Every outcome is counted and access-logged.
 */
import { ClientHelloDecoder, fatalAlert, TlsAlert, type HelloResult } from "../protocol/client-hello.ts";
import { h2GoAwayHttp11Required, httpErrorResponse, HttpHeadDecoder, type HeadResult } from "../protocol/http-head.ts";
import { GatheredReads } from "../transport/gathered-reads.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";
import { logger } from "../log.ts";
import type { NameTable } from "./name-table.ts";
import type { RouteTarget } from "./route-target.ts";
import type { ServerStats } from "./stats.ts";

const access = logger("access");

/** Why a visitor of a shared address was not routed (the `reason` of metrics and the access log). */
export type UnroutedReason =
  | "no_match" | "no_host" | "bad_host" | "malformed" | "not_tls" | "oversized" | "timeout" | "incomplete" | "h2_preface";

/** What the visitors of one shared listen address have in common. */
export interface NameRouting {
  readonly kind: "sni" | "host";
  readonly table: NameTable<RouteTarget>;
  /** The listen address with its bound port, for metrics and logs. */
  listen: string;
  readonly timeoutMs: number;
  readonly stats: ServerStats;
  readonly accessLog: boolean;
}

/** A decision: a route (with the name the visitor asked for), or a refusal with the bytes to answer (or none). */
type Decision =
  | { readonly route: RouteTarget; readonly name: string | null }
  | { readonly reason: UnroutedReason; readonly name: string | null; readonly answer: Uint8Array | null };

const ALERT_UNRECOGNIZED_NAME = fatalAlert(TlsAlert.UNRECOGNIZED_NAME);
const ALERT_DECODE_ERROR = fatalAlert(TlsAlert.DECODE_ERROR);
const HTTP_400 = httpErrorResponse(400);
const HTTP_404 = httpErrorResponse(404);
const HTTP_431 = httpErrorResponse(431);
const H2_GOAWAY = h2GoAwayHttp11Required();

/** TLS: the route for a ClientHello's outcome. */
function decideTls(r: HelloResult, table: NameTable<RouteTarget>): Decision | null {
  if (r.status === "more") return null;
  if (r.status === "error") {
    return { reason: r.error, name: null, answer: r.error === "not_tls" ? null : ALERT_DECODE_ERROR };
  }
  const route = table.match(r.serverName);
  return route !== null ? { route, name: r.serverName } : { reason: "no_match", name: r.serverName, answer: ALERT_UNRECOGNIZED_NAME };
}

/** HTTP: the route for a request head's outcome. */
function decideHttp(r: HeadResult, table: NameTable<RouteTarget>): Decision | null {
  switch (r.status) {
    case "more":
      return null;
    case "error":
      return { reason: r.error, name: null, answer: r.error === "oversized" ? HTTP_431 : HTTP_400 };
    case "h2_preface": {
      const route = table.match(null);
      return route !== null ? { route, name: null } : { reason: "h2_preface", name: null, answer: H2_GOAWAY };
    }
    case "head": {
      const route = table.match(r.host);
      if (route !== null) return { route, name: r.host };
      return r.host === null ? { reason: "no_host", name: null, answer: HTTP_400 } : { reason: "no_match", name: r.host, answer: HTTP_404 };
    }
  }
}

/**
 * One visitor until its route is known. After a refusal it stays the socket's owner while the answer goes out: it
 * half-closes, discards what the visitor still sends, and closes on the visitor's FIN or at the deadline (so that
 * the answer is not lost to a reset).
 */
export class NameSniffer implements SocketOwner {
  private readonly chunks = new GatheredReads();
  private readonly decoder: ClientHelloDecoder | HttpHeadDecoder;
  private timer: ReturnType<typeof setTimeout>;
  private state: "reading" | "lingering" | "done" = "reading";

  constructor(
    private readonly socket: NetSocket,
    private readonly ctx: NameRouting,
  ) {
    this.decoder = ctx.kind === "sni" ? new ClientHelloDecoder() : new HttpHeadDecoder();
    this.timer = setTimeout(() => this.expired(), ctx.timeoutMs);
  }

  onData(chunk: Uint8Array): void {
    if (this.state !== "reading") return;
    this.chunks.push(chunk);
    const d = this.ctx.kind === "sni"
      ? decideTls((this.decoder as ClientHelloDecoder).push(chunk), this.ctx.table)
      : decideHttp((this.decoder as HttpHeadDecoder).push(chunk), this.ctx.table);
    if (d === null) return;
    if ("route" in d) this.route(d.route, d.name);
    else this.refuse(d.reason, d.name, d.answer);
  }

  onDrain(): void {}

  onEnd(): void {
    if (this.state === "reading") this.refuse("incomplete", null, null);
    else if (this.state === "lingering") this.close();
  }

  onClose(): void {
    clearTimeout(this.timer);
    this.state = "done";
  }

  private expired(): void {
    if (this.state === "reading") this.refuse("timeout", null, null);
    else if (this.state === "lingering") this.close();
  }

  /** Hands the socket to a stream on `target`, which sends the chunks read so far first. */
  private route(target: RouteTarget, name: string | null): void {
    clearTimeout(this.timer);
    this.state = "done";
    this.ctx.stats.visitorRouted(target.index);
    const stream = target.open(this.socket, name);
    if (stream === null) return target.refuseNoAgent(this.socket);
    this.socket.data.owner = stream;
    for (const chunk of this.chunks.take()) stream.onData(chunk);
  }

  private refuse(reason: UnroutedReason, name: string | null, answer: Uint8Array | null): void {
    this.chunks.take();
    this.ctx.stats.visitorUnrouted(this.ctx.listen, this.ctx.kind, reason);
    if (this.ctx.accessLog) {
      const visitor = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
      access.info("visitor refused", { visitor, listen: this.ctx.listen, match: this.ctx.kind, name: name ?? undefined, reason });
    }
    if (answer === null) return this.close();
    this.socket.write(answer);
    this.socket.shutdown();
    this.state = "lingering";
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.expired(), this.ctx.timeoutMs);
  }

  private close(): void {
    clearTimeout(this.timer);
    this.state = "done";
    this.socket.end();
  }
}
