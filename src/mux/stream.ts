/**
 * One stream: the bytes of one visitor, piped between a local socket (the visitor on the server, the target on
 * the agent) and the session's frames, with per-stream credit both ways (SPEC.md §2.2). Its state and receiving
 * half are StreamCore's (stream-core.ts); this file adds the sending half (local socket → peer), the local socket's
 * events, the ACK, and the hand-off of a refused stream's visitor.
 *
 * Invariants: at most one read chunk waits for credit (`outPending`; the local socket is paused meanwhile); bytes
 * from the peer wait in `inQueue` at most up to the window we granted; credit is returned only after bytes were
 * written to the local socket.
 *
 * Naming: `handle*` are frames from the peer (called by the session), `on*` are events of the local socket.
 */
import { DATAGRAM_PREFIX_BYTES, WireCode } from "../protocol/constants.ts";
import { datagramRecord } from "../protocol/datagram.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import { releaseChunk } from "../transport/read-buffer.ts";
import { StreamCore } from "./stream-core.ts";
import type { LocalSocket, OpeningWatcher } from "./stream-host.ts";

export type { HalfState, LocalState, StreamEnd, StreamState } from "./stream-core.ts";
export type { LocalSocket, OpeningWatcher, StreamHost } from "./stream-host.ts";

/** One stream, created by its session: the session feeds it frames (handle*), its local socket events (on*). */
export class Stream extends StreamCore implements SocketOwner {
  /** Attaches the local socket and flushes whatever the peer sent meanwhile. */
  attach(local: LocalSocket): void {
    this.local = local;
    this.localState = "attached";
    this.countQueued();
    this.updateReading();
    this.flushIn();
  }

  // --- local socket events (SocketOwner) ---

  onData(chunk: Uint8Array): void {
    if (this.end !== null || this.sendHalf === "closed") return;
    this.lastActive = this.host.epoch;
    this.host.pendingChanged(chunk.byteLength);
    if (this.outPending === null) this.outPending = this.outChunk = chunk;
    else {
      // Bun may deliver one more read after pause(): join it (rare, bounded by one read).
      const joined = new Uint8Array(this.outPending.byteLength + chunk.byteLength);
      joined.set(this.outPending, 0);
      joined.set(chunk, this.outPending.byteLength);
      if (this.outChunk !== null) releaseChunk(this.outChunk);
      releaseChunk(chunk);
      this.outPending = this.outChunk = joined;
    }
    this.pump();
  }

  /**
   * A datagram from the flow's local UDP peer (mux/datagram-flow.ts), only after canTakeDatagram() said yes: staged
   * at once as one DATA frame when the whole record fits the credit; otherwise it becomes the one pending record, sent
   * as credit comes.
   */
  onDatagram(payload: Uint8Array): void {
    const n = DATAGRAM_PREFIX_BYTES + payload.byteLength;
    if (this.watcher !== null || n > this.sendCredit || n > this.host.peerMaxFrame) {
      this.onData(datagramRecord(payload));
      return;
    }
    this.host.sendDatagram(this.id, payload);
    this.sendCredit -= n;
    this.bytesOut += n;
    this.lastActive = this.host.epoch;
  }

  onDrain(): void {
    if (this.end !== null) return;
    this.flushIn();
  }

  onEnd(): void {
    if (this.end !== null) return;
    this.localEof();
    this.pump();
  }

  onClose(error?: Error): void {
    this.localState = "closed";
    if (this.end !== null) return;
    if (error || this.inQueue.length > 0) {
      this.reset(WireCode.CANCEL);
      return;
    }
    // A clean close is EOF (after our own shutdown() Bun reports the peer's FIN only as close).
    this.localEof();
    this.pump();
    this.maybeDone();
  }

  // --- sending local bytes to the peer ---

  /** Sends pending local bytes as far as credit and session room allow; pauses or resumes the local socket. */
  pump(): void {
    if (this.end !== null) return;
    let pending = this.outPending;
    let staged = 0;
    while (pending !== null) {
      if (this.sendCredit <= 0) break;
      if (!(this.open.datagram === true ? this.host.canSendDatagrams() : this.host.canSend(staged))) {
        this.host.block(this);
        break;
      }
      const n = Math.min(pending.byteLength, this.sendCredit, this.host.peerMaxFrame);
      this.host.sendData(this.id, pending, 0, n);
      if (this.watcher !== null) this.watcher.sent(pending, n);
      this.sendCredit -= n;
      this.bytesOut += n;
      staged += n;
      this.lastActive = this.host.epoch;
      this.host.pendingChanged(-n);
      pending = n === pending.byteLength ? null : pending.subarray(n);
    }
    this.outPending = pending;
    this.updateReading();
    if (pending !== null) return;
    if (this.outChunk !== null) {
      releaseChunk(this.outChunk);
      this.outChunk = null;
    }
    if (this.sendHalf === "ending") {
      this.sendHalf = "closed";
      this.host.sendFin(this.id);
      this.maybeDone();
    }
  }

  /**
   * A datagram stream (SPEC.md §2.5) may stage a record now: nothing of it waits, it has credit, and the connection is
   * below UDP's share of its staging buffer. Otherwise the datagram is dropped by its flow, never held.
   */
  canTakeDatagram(): boolean {
    return this.end === null && this.sendHalf === "open" && this.outPending === null && this.sendCredit > 0 && this.host.canSendDatagrams();
  }

  /**
   * Reads the local socket only while nothing of it waits to be sent and the session is not over its budget of
   * unsent bytes (bun delivers a whole read, up to 512 KiB, before a pause can take effect).
   */
  override updateReading(): void {
    if (this.localState !== "attached" || this.end !== null) return;
    const pause = this.outPending !== null || this.host.readsPaused;
    if (pause === this.paused) return;
    this.applyReading(pause);
  }

  /**
   * The local socket came from another stream (see handOff) paused or not: apply this stream's reading state to it.
   * updateReading alone would not, as it acts only on changes of this stream's own state.
   */
  syncReading(): void {
    if (this.localState !== "attached" || this.end !== null) return;
    this.applyReading(this.outPending !== null || this.host.readsPaused);
  }

  private applyReading(pause: boolean): void {
    const local = this.local as LocalSocket;
    this.paused = pause;
    if (pause) local.pause();
    else local.resume();
  }

  // --- frames from the peer ---

  handleWindow(increment: number): void {
    if (this.end !== null) return;
    this.sendCredit += increment;
    if (this.sendCredit > 0x7fffffff) return this.reset(WireCode.FLOW_CONTROL_ERROR);
    this.pump();
  }

  /**
   * Server: the agent acknowledged the stream (its target is connected): no refusal can follow. Returns false when
   * the stream was not waiting for it (a repeated ACK, or one after the stream ended): nothing changes then.
   */
  handleAck(): boolean {
    if (this.state !== "opening") return false;
    this.state = "open";
    this.watcher = null;
    this.startWindow();
    return true;
  }

  /** The peer reset the stream: abort the local socket at once. */
  handleRst(code: number): void {
    if (this.end !== null) return;
    // Refused before ACK with nothing delivered: the watcher may take the visitor to another stream (via handOff).
    const w = this.watcher;
    if (w !== null && this.bytesIn === 0 && this.recvHalf === "open" && this.localState === "attached" && w.refused(code)) return;
    this.finish(code, false);
  }

  /**
   * Called by the agent once the target is connected (after attach): tells the server (ACK), then grows the window
   * from the opening window (WINDOW, SPEC.md §2.2).
   */
  acknowledge(): void {
    if (this.state !== "opening") return;
    this.state = "open";
    this.host.sendAck(this.id);
    this.startWindow();
  }

  /**
   * Server side, right after the stream was opened: until the agent's ACK, `watcher` is told every byte sent and,
   * when the agent refuses the stream before delivering anything, asked whether it takes the visitor elsewhere.
   */
  watchOpening(watcher: OpeningWatcher): void {
    if (this.state === "opening") this.watcher = watcher;
  }

  /**
   * Ends this stream with `code` (state `moved`) without touching the local socket, which the caller takes over
   * (for a refused stream's watcher). Returns the local bytes not sent yet (the caller owns them) and whether the
   * local socket had ended its sending side.
   */
  handOff(code: number): { unsent: Uint8Array | null; eof: boolean } {
    const unsent = this.outPending;
    if (unsent !== null) this.host.pendingChanged(-unsent.byteLength);
    const eof = this.sendHalf !== "open";
    this.outPending = this.outChunk = null;
    this.releaseAll();
    this.watcher = null;
    this.local = null;
    this.localState = "none";
    this.state = "moved";
    this.end = code;
    this.inQueue.clear();
    this.host.streamDone(this, code);
    return { unsent, eof };
  }

  // --- internals ---

  /** The local socket sent its last byte (FIN or a clean close). */
  private localEof(): void {
    if (this.sendHalf === "open") this.sendHalf = "ending";
  }
}
