/**
 * One stream: the bytes of one visitor, piped between a local socket (the visitor on the server, the target on
 * the agent) and the session's frames, with per-stream credit both ways (SPEC.md §2.2).
 *
 * Invariants: at most one read chunk waits for credit (`outPending`; the local socket is paused meanwhile); bytes
 * from the peer wait in `inQueue` at most up to the window we granted; credit is returned only after bytes were
 * written to the local socket.
 */
import type { OpenPayload } from "../protocol/frame-decoder.ts";
import { WireCode } from "../protocol/constants.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import { releaseChunk } from "../transport/read-buffer.ts";
import { InboundQueue } from "./inbound-queue.ts";
import { isRefusal, ReplayBuffer } from "./replay.ts";
import type { StreamHost } from "./stream-host.ts";

export type { StreamHost } from "./stream-host.ts";

/** The part of a Bun socket a stream uses (structurally satisfied by `Socket`). */
export interface LocalSocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  pause(): void;
  resume(): void;
  shutdown(halfClose?: boolean): void;
  end(): void;
  terminate(): void;
}

/** How a stream ended: null while open, "fin" when both sides finished cleanly, otherwise the wire code. */
export type StreamEnd = null | "fin" | number;

/** One stream, created by its session: the session feeds it frames (handleX), its local socket events (onX). */
export class Stream implements SocketOwner {
  /** The local socket, once attached (the agent attaches after dialing the target). */
  local: LocalSocket | null = null;
  /** Bytes we may still send to the peer. */
  private sendCredit: number;
  /** Bytes the peer may still send us before we return credit. */
  private recvCredit: number;
  /** Bytes written to the local socket but not yet returned to the peer as credit. */
  private creditOwed = 0;
  private readonly creditThreshold: number;
  /** A local chunk (or its unsent tail) waiting for credit or session room. */
  private outPending: Uint8Array | null = null;
  /** The whole read `outPending` is part of: released once every byte of it is staged (sendData copies). */
  private outChunk: Uint8Array | null = null;
  /** Peer bytes waiting for the local socket (views of received chunks, or copies: see InboundQueue). */
  private readonly inQueue = new InboundQueue();
  private paused = false;
  private localEof = false;
  private finSent = false;
  private remoteFin = false;
  private shutdownSent = false;
  private localClosed = false;
  /** How the stream ended. */
  end: StreamEnd = null;
  /** Bytes from the local socket sent to the peer. */
  bytesOut = 0;
  /** Bytes from the peer written to the local socket. */
  bytesIn = 0;
  /** Milliseconds timestamp (performance.now) at open. */
  readonly openedAt = performance.now();
  /** Set by the owner (server: route label; agent: service) for logs and metrics. */
  label = "";
  /** Set when a refusal handed this stream's visitor to another stream (see enableRetry); it ended with the code. */
  retried = false;
  /** Server streams until ACK: asked to take the visitor elsewhere after a refusal (see enableRetry). */
  private retryHook: ((code: number) => boolean) | null = null;
  /** Server streams until ACK: copies of what the visitor sent, for the retry (null once too much was sent). */
  private replay: ReplayBuffer | null = null;

  constructor(
    readonly id: number,
    private readonly host: StreamHost,
    /** What the peer granted us per stream. */
    peerWindow: number,
    /** What we granted the peer per stream. */
    readonly localWindow: number,
    /** The OPEN that created this stream (visitor address, service). */
    readonly open: OpenPayload,
  ) {
    this.sendCredit = peerWindow;
    this.recvCredit = localWindow;
    this.creditThreshold = Math.max(1, localWindow >>> 2);
  }

  /** Bytes of peer data held in memory waiting for the local socket. */
  get queuedBytes(): number {
    return this.inQueue.bytes;
  }

  /** Attaches the local socket and flushes whatever the peer sent meanwhile. */
  attach(local: LocalSocket): void {
    this.local = local;
    this.updateReading();
    this.flushIn();
  }

  // --- local socket events (SocketOwner) ---

  onData(chunk: Uint8Array): void {
    if (this.end !== null || this.finSent) return;
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

  onDrain(): void {
    if (this.end !== null) return;
    this.flushIn();
  }

  onEnd(): void {
    if (this.end !== null) return;
    this.localEof = true;
    this.pump();
  }

  onClose(error?: Error): void {
    this.localClosed = true;
    if (this.end !== null) return;
    if (error || this.inQueue.length > 0) {
      this.reset(WireCode.CANCEL);
      return;
    }
    // A clean close is EOF (after our own shutdown() Bun reports the peer's FIN only as close).
    this.localEof = true;
    this.pump();
    this.maybeDone();
  }

  // --- sending local bytes to the peer ---

  /** Sends pending local bytes as far as credit and session room allow; pauses or resumes the local socket. */
  pump(): void {
    if (this.end !== null) return;
    let pending = this.outPending;
    while (pending !== null) {
      if (this.sendCredit <= 0) break;
      if (!this.host.canSend()) {
        this.host.block(this);
        break;
      }
      const n = Math.min(pending.byteLength, this.sendCredit, this.host.peerMaxFrame);
      this.host.sendData(this.id, pending, 0, n);
      if (this.replay !== null && !this.replay.keep(pending, n)) this.replay = null;
      this.sendCredit -= n;
      this.bytesOut += n;
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
    if (this.localEof && !this.finSent) {
      this.finSent = true;
      this.host.sendFin(this.id);
      this.maybeDone();
    }
  }

  /**
   * Reads the local socket only while nothing of it waits to be sent and the session is not over its budget of
   * unsent bytes (bun delivers a whole read, up to 512 KiB, before a pause can take effect).
   */
  updateReading(): void {
    const local = this.local;
    if (local === null || this.localClosed || this.end !== null) return;
    const pause = this.outPending !== null || this.host.readsPaused;
    if (pause === this.paused) return;
    this.paused = pause;
    if (pause) local.pause();
    else local.resume();
  }

  /**
   * The local socket came from another stream (a retry) paused or not: apply this stream's reading state to it.
   * updateReading alone would not, as it acts only on changes of this stream's own state.
   */
  syncReading(): void {
    const local = this.local;
    if (local === null || this.localClosed || this.end !== null) return;
    this.paused = this.outPending !== null || this.host.readsPaused;
    if (this.paused) local.pause();
    else local.resume();
  }

  // --- frames from the peer ---

  /** DATA from the peer (a view of the received chunk). A flow-control violation resets the stream. */
  handleData(payload: Uint8Array): void {
    if (this.end !== null) return;
    const len = payload.byteLength;
    if (len > this.recvCredit || this.remoteFin) {
      this.reset(this.remoteFin ? WireCode.STREAM_CLOSED : WireCode.FLOW_CONTROL_ERROR);
      return;
    }
    this.recvCredit -= len;
    if (len === 0) return;
    if (this.localClosed) {
      // Nowhere to deliver: the local side is gone.
      this.reset(WireCode.CANCEL);
      return;
    }
    if (this.local !== null && this.inQueue.length === 0) {
      const n = this.writeLocal(payload);
      if (n < 0) return; // reset
      if (n < len) this.inQueue.push(payload.subarray(n));
    } else {
      this.inQueue.push(payload);
    }
  }

  handleWindow(increment: number): void {
    if (this.end !== null) return;
    this.sendCredit += increment;
    if (this.sendCredit > 0x7fffffff) {
      this.reset(WireCode.FLOW_CONTROL_ERROR);
      return;
    }
    this.pump();
  }

  handleFin(): void {
    if (this.end !== null || this.remoteFin) return;
    this.remoteFin = true;
    this.flushIn();
  }

  /** The peer reset the stream: abort the local socket at once. */
  handleRst(code: number): void {
    if (this.end !== null) return;
    // Refused before ACK with nothing delivered: the hook may take the visitor to another agent (it calls handOff).
    const hook = this.retryHook;
    if (hook !== null && this.replay !== null && isRefusal(code) && this.bytesIn === 0 && !this.remoteFin && !this.localClosed && hook(code)) return;
    this.finish(code, false);
  }

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

  // --- internals ---

  /** Writes to the local socket; returns bytes written, or -1 if the socket was reset (the stream is reset then). */
  private writeLocal(buf: Uint8Array): number {
    const local = this.local as LocalSocket;
    const n = local.write(buf);
    if (n < 0) {
      // The local socket is gone. If the peer reset it while we wrote, this write consumed the error and Bun then
      // reports a clean `end` and `close`: taking that for a FIN would pass a truncated stream on as complete.
      this.reset(WireCode.CANCEL);
      return -1;
    }
    if (n === 0) return 0;
    this.bytesIn += n;
    this.creditOwed += n;
    if (this.creditOwed >= this.creditThreshold) {
      this.recvCredit += this.creditOwed;
      this.host.sendWindow(this.id, this.creditOwed);
      this.creditOwed = 0;
    }
    return n;
  }

  private flushIn(): void {
    if (this.local === null || this.end !== null) return;
    const q = this.inQueue;
    while (q.length > 0) {
      const head = q.head();
      const n = this.writeLocal(head);
      if (n < 0) return; // reset
      if (n < head.byteLength) {
        q.replaceHead(head.subarray(n));
        return;
      }
      q.shift();
    }
    q.releaseTail();
    if (this.remoteFin && !this.shutdownSent) {
      this.shutdownSent = true;
      if (!this.localClosed) this.local.shutdown();
      this.maybeDone();
    }
  }

  private maybeDone(): void {
    if (this.end !== null) return;
    if (this.finSent && this.shutdownSent) {
      this.end = "fin";
      if (this.outPending !== null) this.host.pendingChanged(-this.outPending.byteLength);
      this.outPending = this.outChunk = null;
      if (!this.localClosed) this.local?.end();
      this.host.streamDone(this, null);
    }
  }

  private finish(code: number, sendRst: boolean): void {
    this.end = code;
    if (this.outPending !== null) this.host.pendingChanged(-this.outPending.byteLength);
    this.outPending = this.outChunk = null;
    this.inQueue.clear();
    if (sendRst) this.host.sendRst(this.id, code);
    if (this.local !== null && !this.localClosed) this.local.terminate();
    this.host.streamDone(this, code);
  }

  /**
   * Server side, right after the stream was opened: until the agent's ACK, keep copies of the visitor's bytes (up to
   * REPLAY_MAX_BYTES) and, if the agent refuses the stream with a code that means it took nothing (SPEC §2.2),
   * call `hook(code)`. The hook returns true after it moved the visitor to another stream with {@link handOff}.
   */
  enableRetry(hook: (code: number) => boolean): void {
    this.retryHook = hook;
    this.replay = new ReplayBuffer();
  }

  /** Server side: the agent acknowledged the stream (its target is connected): no retry from now on. */
  peerAcked(): void {
    this.retryHook = null;
    this.replay = null;
  }

  /**
   * For the retry hook only: ends this stream with `code` without touching the local socket, and returns what the
   * visitor sent so far (the replay, then bytes not sent yet; the caller owns them) and whether it half-closed.
   */
  handOff(code: number): { chunks: Uint8Array[]; eof: boolean } {
    const chunks = this.replay?.take() ?? [];
    if (this.outPending !== null) {
      chunks.push(this.outPending);
      this.host.pendingChanged(-this.outPending.byteLength);
    }
    const eof = this.localEof;
    this.outPending = this.outChunk = null;
    this.retryHook = null;
    this.replay = null;
    this.retried = true;
    this.local = null;
    this.end = code;
    this.inQueue.clear();
    this.host.streamDone(this, code);
    return { chunks, eof };
  }

  /** Called by the agent once the target is connected: tells the server (ACK). */
  acknowledge(): void {
    if (this.end === null) this.host.sendAck(this.id);
  }
}
