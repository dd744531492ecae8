/**
 * A UDP flow's end of a datagram stream (SPEC.md §2.5): the stream's local socket is a UDP peer (the visitor on the
 * server, a socket connected to the service on the agent). Datagrams from it become length-prefixed records on the
 * stream; records from the peer are cut out (DatagramReader) and sent as datagrams. Loss instead of bloat: while the
 * stream cannot take a record now (no credit, its connection backed up, or past the UDP share of it) datagrams are
 * dropped and counted, never queued. A record waits only when credit or room ran out mid-record (the stream pauses
 * this "socket" meanwhile). So a flow holds at most one record waiting to be sent and one partial record received
 * (each ≤ 2 + 65,507 bytes).
 *
 * FlowTable holds the flows of one route (server) or of the process (agent): the flow cap and the idle timeout.
 */
import { DATAGRAM_PREFIX_BYTES, MAX_DATAGRAM_BYTES, WireCode } from "../protocol/constants.ts";
import { DatagramReader } from "../protocol/datagram.ts";
import type { Stream } from "./stream.ts";
import type { LocalSocket } from "./stream-host.ts";

/** Why a datagram was dropped (a metrics label). */
export type DropReason = "oversized" | "flow_limit" | "no_agent" | "queue_full" | "send_failed";

/** Where a flow counts its datagrams (per route on the server, per service on the agent). */
export interface FlowCounters {
  /** A datagram of `bytes` from the local UDP peer went into the tunnel. */
  received(bytes: number): void;
  /** A datagram of `bytes` from the tunnel went out to the local UDP peer. */
  delivered(bytes: number): void;
  dropped(reason: DropReason): void;
}

/** One flow: a stream and the UDP peer it carries datagrams for. */
export class DatagramFlow implements LocalSocket {
  /** The flow's stream, once opened. */
  stream: Stream | null = null;
  /** The table's idle clock when a datagram last moved either way. */
  lastActive: number;
  /** Datagrams from the local peer into the tunnel, and from the tunnel to the local peer. */
  datagramsIn = 0;
  datagramsOut = 0;
  /** Datagrams of this flow dropped (any reason). */
  dropped = 0;
  private paused = false;
  private closed = false;
  /** Datagrams cut out of one write, sent together when it ends (views of its bytes: valid until then). */
  private readonly batch: Uint8Array[] = [];
  private readonly reader = new DatagramReader((d) => this.deliver(d));

  constructor(
    /** Table key: the visitor's `address|port` on the server, the stream id on the agent. */
    readonly key: string,
    private readonly table: FlowTable,
    /** Sends datagrams to the local peer in one system call; how many the kernel took (the rest are lost). */
    private readonly sendMany: (datagrams: readonly Uint8Array[]) => number,
    private readonly counters: FlowCounters,
    /** The flow is over (its stream ended): release the local socket. */
    private readonly onClosed: () => void,
  ) {
    this.lastActive = table.epoch;
  }

  /** Binds the flow's stream (after Session.openStream or the agent's attach). */
  bind(stream: Stream): void {
    this.stream = stream;
  }

  /** A datagram from the local peer (`data` valid during the call). Dropped unless the stream can take it now. */
  receive(data: Uint8Array, truncated: boolean): void {
    if (this.closed) return;
    if (truncated || data.byteLength > MAX_DATAGRAM_BYTES) return this.drop("oversized");
    const s = this.stream;
    if (s === null || this.paused || !s.canTakeDatagram()) return this.drop("queue_full");
    this.lastActive = this.table.epoch;
    this.datagramsIn++;
    this.counters.received(data.byteLength);
    s.onDatagram(data);
  }

  // --- LocalSocket (the stream's side) ---

  /** Records from the peer: every byte is taken; a malformed record resets the stream (PROTOCOL_ERROR). */
  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    if (this.closed) return -1;
    const err = this.reader.push(data.subarray(byteOffset, byteOffset + byteLength));
    this.sendBatch();
    if (err !== null) {
      this.stream?.reset(WireCode.PROTOCOL_ERROR);
      return -1;
    }
    return byteLength;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** The peer sent FIN: no more records arrive (nothing to do for UDP). */
  shutdown(): void {}

  end(): void {
    this.close();
  }

  terminate(): void {
    this.close();
  }

  /** Bytes held for this flow: a record waiting to be sent is the stream's; this is the partial record received. */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /** Idle past the table's timeout: the stream is reset with IDLE_TIMEOUT (the peer closes its end too). */
  expire(): void {
    if (this.stream !== null && this.stream.end === null) this.stream.reset(WireCode.IDLE_TIMEOUT);
    else this.close();
  }

  private deliver(datagram: Uint8Array): void {
    this.lastActive = this.table.epoch;
    this.batch.push(datagram);
    if (this.batch.length >= SEND_BATCH) this.sendBatch();
  }

  /** Sends the datagrams cut out so far (a DATA frame often carries a burst of them: one sendmmsg, not one each). */
  private sendBatch(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    const sent = this.sendMany(batch);
    for (let i = 0; i < batch.length; i++) {
      if (i >= sent) {
        this.drop("send_failed");
        continue;
      }
      this.datagramsOut++;
      this.counters.delivered((batch[i] as Uint8Array).byteLength);
    }
    batch.length = 0;
  }

  private drop(reason: DropReason): void {
    this.dropped++;
    this.counters.dropped(reason);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.table.remove(this);
    this.onClosed();
  }
}

/** Datagrams sent in one system call at most (Linux takes up to 1,024 per sendmmsg). */
const SEND_BATCH = 256;

/** Bytes of the largest record: a datagram and its prefix. */
export const MAX_RECORD_BYTES = DATAGRAM_PREFIX_BYTES + MAX_DATAGRAM_BYTES;

/**
 * The flows of a route (or of an agent): at most `maxFlows` at once, each closed once idle for `idleTimeoutMs`
 * (one timer ticking four times per timeout, so a flow closes after 1 to 1.25 timeouts without a datagram).
 */
export class FlowTable {
  readonly flows = new Map<string, DatagramFlow>();
  /** The idle clock: ticks four times per timeout. */
  epoch = 0;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    idleTimeoutMs: number,
    /** Open flows allowed at once. */
    readonly maxFlows: number,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.max(1, Math.floor(idleTimeoutMs / 4)));
    this.timer.unref?.();
  }

  get size(): number {
    return this.flows.size;
  }

  /** True while another flow may open. */
  get hasRoom(): boolean {
    return this.flows.size < this.maxFlows;
  }

  get(key: string): DatagramFlow | undefined {
    return this.flows.get(key);
  }

  add(flow: DatagramFlow): void {
    this.flows.set(flow.key, flow);
  }

  remove(flow: DatagramFlow): void {
    if (this.flows.get(flow.key) === flow) this.flows.delete(flow.key);
  }

  /** Stops the idle timer and ends every flow (its stream reset with `code`). */
  close(code: number = WireCode.CANCEL): void {
    clearInterval(this.timer);
    for (const f of [...this.flows.values()]) {
      if (f.stream !== null && f.stream.end === null) f.stream.reset(code);
      else f.terminate();
    }
  }

  private sweep(): void {
    const now = ++this.epoch;
    for (const f of [...this.flows.values()]) if (now - f.lastActive >= 4) f.expire();
  }
}
