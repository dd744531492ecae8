/**
 * The state of one stream and its receiving half (peer → local socket): the fields every part of a stream shares,
 * DATA and FIN from the peer, credit returned as the local socket takes bytes, and how a stream ends. Only Stream
 * (stream.ts) extends it, adding the sending half and the local socket's events; only Stream is constructed.
 *
 * State (SPEC.md §2.2, as yamux's streamState): the stream is `opening` until the ACK (sent by the agent, received by
 * the server), then `open`, and finally `closed` (both halves finished, or reset) or `moved` (its local socket was
 * handed to another stream, see Stream.handOff). Each direction has its own {@link HalfState}; the local socket has
 * its {@link LocalState}.
 */
import type { OpenPayload } from "../protocol/frames.ts";
import { WireCode } from "../protocol/constants.ts";
import { InboundQueue } from "./inbound-queue.ts";
import { ReceiveWindow } from "./receive-window.ts";
import type { LocalSocket, OpeningWatcher, StreamHost } from "./stream-host.ts";

/** How a stream ended: null while open, "fin" when both sides finished cleanly, otherwise the wire code. */
export type StreamEnd = null | "fin" | number;

/** The stream as a whole: before the ACK, after it, finished, or handed to another stream. */
export type StreamState = "opening" | "open" | "closed" | "moved";

/**
 * One direction of a stream. Sending half (local socket → peer): `open` reads the local socket; `ending` saw its EOF
 * with bytes still to send; `closed` sent FIN. Receiving half (peer → local socket): `open` takes DATA; `ending` got
 * the peer's FIN with bytes still queued for the local socket; `closed` shut the local socket's write side.
 */
export type HalfState = "open" | "ending" | "closed";

/** The local socket: not attached yet (agent, until the target is dialled), attached, or gone. */
export type LocalState = "none" | "attached" | "closed";

/** Everything of a stream but its sending half (see the file header). */
export abstract class StreamCore {
  /** The local socket, once attached (the agent attaches after dialing the target). */
  local: LocalSocket | null = null;
  state: StreamState = "opening";
  /** Local socket → peer. */
  sendHalf: HalfState = "open";
  /** Peer → local socket. */
  recvHalf: HalfState = "open";
  localState: LocalState = "none";
  /** How the stream ended (set with state `closed` or `moved`). */
  end: StreamEnd = null;
  /** Bytes we may still send to the peer. */
  protected sendCredit: number;
  /** Our receive window: the peer's credit, credit owed, the adaptive window (receive-window.ts). */
  protected readonly rx: ReceiveWindow;
  /** The opening window, counted in the session's InboundTally until the local socket is attached (then: the queue). */
  private reserved: number;
  /** A local chunk (or its unsent tail) waiting for credit or session room. */
  protected outPending: Uint8Array | null = null;
  /** The whole read `outPending` is part of: released once every byte of it is staged (sendData copies). */
  protected outChunk: Uint8Array | null = null;
  /** Peer bytes waiting for the local socket (views of received chunks, or copies: see InboundQueue). */
  protected readonly inQueue = new InboundQueue();
  /** Whether we paused the local socket (mirrors the last pause()/resume() call). */
  protected paused = false;
  /** Server streams until ACK: told what is sent and asked on a refusal (see watchOpening). */
  protected watcher: OpeningWatcher | null = null;
  /** Bytes from the local socket sent to the peer. */
  bytesOut = 0;
  /** Bytes from the peer written to the local socket. */
  bytesIn = 0;
  /** Milliseconds timestamp (performance.now) at open. */
  readonly openedAt = performance.now();
  /** Set by the owner (server: route label; agent: service) for logs and metrics. */
  label = "";
  /** The host's idle clock (`epoch`) when a byte last moved either way (see SessionCore's idle sweep). */
  lastActive: number;

  constructor(
    readonly id: number,
    protected readonly host: StreamHost<StreamCore>,
    /** What the peer granted us per stream. */
    peerWindow: number,
    /** What we granted the peer per stream when it opened. */
    readonly localWindow: number,
    /** The base window once the stream is acknowledged (see openWindow()). */
    private readonly openWindow: number,
    /** The OPEN that created this stream (visitor address, service). */
    readonly open: OpenPayload,
  ) {
    this.sendCredit = peerWindow;
    this.rx = new ReceiveWindow(host.windows, localWindow);
    this.reserved = localWindow;
    host.inbound.charge(localWindow);
    this.lastActive = host.epoch;
  }

  /** The window this stream aims to keep granted to the peer now (bytes; adaptive, SPEC.md §2.2). */
  get receiveWindow(): number {
    return this.rx.size;
  }

  /** Bytes of peer data held in memory waiting for the local socket. */
  get queuedBytes(): number {
    return this.inQueue.bytes;
  }

  // --- frames from the peer ---

  /** DATA from the peer (a view of the received chunk). A flow-control violation resets the stream. */
  handleData(payload: Uint8Array): void {
    if (this.end !== null) return;
    this.lastActive = this.host.epoch;
    const len = payload.byteLength;
    if (this.recvHalf !== "open") return this.reset(WireCode.STREAM_CLOSED);
    if (!this.rx.take(len)) return this.reset(WireCode.FLOW_CONTROL_ERROR);
    if (len === 0) return;
    if (this.localState === "closed") return this.reset(WireCode.CANCEL); // nowhere to deliver: the local side is gone
    if (this.localState === "attached" && this.inQueue.length === 0) {
      const n = this.writeLocal(payload, 0);
      if (n < 0) return; // reset
      if (n < len) this.inQueue.push(payload.subarray(n));
    } else {
      this.inQueue.push(payload);
    }
  }

  handleFin(): void {
    if (this.end !== null || this.recvHalf !== "open") return;
    this.recvHalf = "ending";
    this.flushIn();
  }

  // --- ending ---

  /** Resets the stream: RST to the peer, abort the local socket. */
  reset(code: number): void {
    if (this.end !== null) return;
    this.finish(code, true);
  }

  /** The session is gone: abort without sending anything. */
  abort(code: number): void {
    if (this.end !== null) return;
    this.finish(code, false);
  }

  /** Pauses or resumes the local socket as the sending half needs (Stream). */
  abstract updateReading(): void;

  // --- internals ---

  /**
   * Writes to the local socket (`rest`: bytes queued besides `buf`); returns bytes written, or -1 if the socket was
   * reset (the stream is reset then).
   */
  protected writeLocal(buf: Uint8Array, rest: number): number {
    const n = (this.local as LocalSocket).write(buf);
    if (n < 0) {
      // The local socket is gone. If the peer reset it while we wrote, this write consumed the error and Bun then
      // reports a clean `end` and `close`: taking that for a FIN would pass a truncated stream on as complete.
      this.reset(WireCode.CANCEL);
      return -1;
    }
    if (n === 0) return 0;
    this.lastActive = this.host.epoch;
    this.bytesIn += n;
    const inc = this.rx.written(n, rest + buf.byteLength - n);
    if (inc > 0) this.host.sendWindow(this.id, inc);
    return n;
  }

  /** The local socket is attached: what the peer sent meanwhile is counted as queued bytes, not as a reservation. */
  protected countQueued(): void {
    this.releaseReservation();
    this.inQueue.countInto(this.host.inbound);
  }

  /**
   * The stream is acknowledged (sent by the agent, received by the server): the window becomes `openWindow`
   * (agent: one WINDOW grows it from the opening window, SPEC.md §2.2) and starts adapting.
   */
  protected startWindow(): void {
    const extra = this.rx.open(this.openWindow);
    if (extra > 0) this.host.sendWindow(this.id, extra);
  }

  /** Idle check of the receive window (the session's heartbeat, see ReceiveWindow.idleCheck). */
  idleCheck(): void {
    if (this.end === null) this.rx.idleCheck();
  }

  protected flushIn(): void {
    if (this.localState === "none" || this.end !== null) return;
    const q = this.inQueue;
    while (q.length > 0) {
      const head = q.head();
      const n = this.writeLocal(head, q.bytes - head.byteLength);
      if (n < 0) return; // reset
      if (n < head.byteLength) {
        q.replaceHead(head.subarray(n));
        return;
      }
      q.shift();
    }
    q.releaseTail();
    if (this.recvHalf === "ending") {
      this.recvHalf = "closed";
      if (this.localState === "attached") (this.local as LocalSocket).shutdown();
      this.maybeDone();
    }
  }

  protected maybeDone(): void {
    if (this.end !== null || this.sendHalf !== "closed" || this.recvHalf !== "closed") return;
    this.dropPending();
    this.releaseAll();
    this.state = "closed";
    this.end = "fin";
    if (this.localState === "attached") (this.local as LocalSocket).end();
    this.host.streamDone(this, null);
  }

  protected finish(code: number, sendRst: boolean): void {
    this.dropPending();
    this.releaseAll();
    this.state = "closed";
    this.end = code;
    this.watcher = null;
    this.inQueue.clear();
    if (sendRst) this.host.sendRst(this.id, code);
    if (this.localState === "attached") (this.local as LocalSocket).terminate();
    this.host.streamDone(this, code);
  }

  protected dropPending(): void {
    if (this.outPending !== null) this.host.pendingChanged(-this.outPending.byteLength);
    this.outPending = this.outChunk = null;
  }

  /** The stream ended: nothing of its windows stays reserved. */
  protected releaseAll(): void {
    this.releaseReservation();
    this.rx.release();
  }

  /** Ends the opening window's reservation (at attach, or when the stream ends without one). */
  protected releaseReservation(): void {
    if (this.reserved === 0) return;
    this.host.inbound.charge(-this.reserved);
    this.reserved = 0;
  }
}
