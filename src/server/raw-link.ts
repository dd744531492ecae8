/**
 * A raw host: one plain MOSN agent connection after its handshake (SPEC.md §7). While idle it owns the socket and
 * keeps what the agent sends (a MOSN agent's hosting listener may speak first); a visitor routed to it takes it
 * exclusively, spliced byte for byte (transport/splice.ts) with those kept bytes first; when the visitor's splice
 * ends the connection is closed, as raw TCP has no message boundary, and the MOSN agent dials a new one.
 */
import { TunnelError } from "../errors.ts";
import { GatheredReads } from "../transport/gathered-reads.ts";
import { Splice, type SpliceResult } from "../transport/splice.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";
import type { RawHost } from "./registry.ts";

/** Bytes an idle raw connection may send before a visitor takes it; past this it is closed. */
export const RAW_IDLE_MAX_BYTES = 64 * 1024;

/** What a raw link tells the server about its life. */
export interface RawLinkEvents {
  /** A visitor (route `label`) was given this connection. */
  carried(link: RawLink, label: string): void;
  /** The visitor's splice ended, with the bytes each way (up: visitor → agent). */
  visitorDone(link: RawLink, label: string, up: number, down: number, result: SpliceResult["how"]): void;
  /** The connection is gone (closed by either side): remove it. Called once. */
  gone(link: RawLink, reason: string): void;
}

/** Identity of a raw host, fixed at its handshake. */
export interface RawIdentity {
  connectionId: string;
  cluster: string;
  hostName: string;
  weight: number;
}

/** One raw connection; owns its socket while idle. */
export class RawLink implements RawHost, SocketOwner {
  readonly kind = "raw";
  readonly connectionId: string;
  readonly cluster: string;
  readonly hostName: string;
  readonly weight: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly connectedAt = Date.now();
  /** The visitor it carries or carried (`address:port`), and since when (performance.now()). */
  visitor = "";
  carriedAt = 0;
  private state: "idle" | "busy" | "closed" = "idle";
  private retired = false;
  private readonly early = new GatheredReads();
  private splice: Splice | null = null;
  private label = "";

  constructor(
    private readonly socket: NetSocket,
    id: RawIdentity,
    private readonly events: RawLinkEvents,
  ) {
    this.connectionId = id.connectionId;
    this.cluster = id.cluster;
    this.hostName = id.hostName;
    this.weight = id.weight;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort ?? 0;
  }

  get idle(): boolean {
    return this.state === "idle" && !this.retired;
  }

  get carrying(): RawHost["carrying"] {
    const s = this.splice;
    return s === null || this.state !== "busy" ? null : { label: this.label, upBytes: s.aToB, downBytes: s.bToA };
  }

  carry(visitor: NetSocket, label: string): SocketOwner {
    if (!this.idle) throw new TunnelError("ERR_INTERNAL", "raw connection taken twice");
    this.state = "busy";
    this.label = label;
    this.visitor = `${visitor.remoteAddress}:${visitor.remotePort ?? 0}`;
    this.carriedAt = performance.now();
    const splice = new Splice(visitor, this.socket, (r) => this.visitorDone(r), { toA: this.early.take() });
    this.splice = splice;
    this.socket.data.owner = splice.b;
    this.events.carried(this, label);
    return splice.a;
  }

  retire(): void {
    this.retired = true;
    if (this.state === "idle") this.socket.end();
  }

  /** Closes it now (shutdown): a visitor still on it is cut off. */
  close(): void {
    if (this.splice !== null) this.splice.close(true);
    else this.socket.terminate();
  }

  // --- the agent socket's events while idle ---

  onData(chunk: Uint8Array): void {
    if (this.state !== "idle") return;
    if (this.early.bytes + chunk.byteLength > RAW_IDLE_MAX_BYTES) {
      this.socket.terminate();
      return;
    }
    this.early.push(chunk); // small reads gathered: a byte-a-read trickle holds about its bytes
  }

  onDrain(): void {}

  onEnd(): void {
    // The agent closed an idle connection (its own idle timeout, shutdown): nothing to carry any more.
    this.socket.end();
  }

  onClose(error?: Error): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.events.gone(this, error ? `reset: ${error.message}` : "closed by the agent");
  }


  private visitorDone(r: SpliceResult): void {
    this.state = "closed";
    this.events.visitorDone(this, this.label, r.aToB, r.bToA, r.how);
    this.events.gone(this, `visitor done (${r.how})`);
  }
}
