/**
 * The contracts around a Stream (stream.ts): what it needs from its session (StreamHost, implemented by SessionCore),
 * the part of a socket it pipes to (LocalSocket), and the server's watcher of a stream before its ACK
 * (OpeningWatcher, implemented by the server's failover). Generic in the stream type so that this file imports
 * nothing of stream.ts.
 */
import type { InboundTally } from "./inbound-queue.ts";
import type { WindowHost } from "./receive-window.ts";

/**
 * Unsent bytes that streams' local sockets may have delivered on one session before every stream stops reading:
 * without it, each of thousands of visitors could park one 512 KiB read while the connection is backed up.
 */
export const PENDING_OUT_BUDGET_BYTES = 8 * 1024 * 1024;
/**
 * DATA bytes a stream stages in one go while other streams wait for room (StreamHost.canSend): they are served
 * round-robin, so a frame waits behind at most the staging high-water mark plus one quantum per other stream.
 */
export const SEND_QUANTUM_BYTES = 128 * 1024;

/** The part of a Bun socket a stream uses (structurally satisfied by `Socket`). */
export interface LocalSocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  pause(): void;
  resume(): void;
  shutdown(halfClose?: boolean): void;
  end(): void;
  terminate(): void;
}

/** What a stream `S` needs from its session (implemented by SessionCore, session-core.ts). */
export interface StreamHost<S> {
  /** What the stream's receive window needs: the tally, round trip, maximum, clock (receive-window.ts). */
  readonly windows: WindowHost;
  /** Peer bytes the session holds for local sockets: streams count their queues and reservations here. */
  readonly inbound: InboundTally;
  /** The session's idle clock: a stream stores it as `lastActive` whenever a byte moves (one number store). */
  readonly epoch: number;
  /**
   * True while the session takes DATA: its staging buffer is below its high-water mark and, once this stream
   * staged `staged` bytes in this pump, its quantum is not used up while other streams wait (round-robin).
   */
  canSend(staged: number): boolean;
  /**
   * True while a datagram stream may stage more: the staging buffer is below UDP's share of the high-water mark
   * (SPEC.md §2.5), so datagram flows cannot take the room TCP streams of the same connection need.
   */
  canSendDatagrams(): boolean;
  /** Parks a stream until the session can send again; `pump()` is called then. */
  block(stream: S): void;
  sendData(streamId: number, data: Uint8Array, offset: number, length: number): void;
  /** Stages one whole datagram record (a DATA frame of its prefix and `payload`; the caller checked credit and room). */
  sendDatagram(streamId: number, payload: Uint8Array): void;
  sendFin(streamId: number): void;
  sendRst(streamId: number, code: number): void;
  sendWindow(streamId: number, increment: number): void;
  sendAck(streamId: number): void;
  /** Peer's max DATA payload. */
  readonly peerMaxFrame: number;
  /** True while the session holds too many unsent local bytes: every stream stops reading its local socket. */
  readonly readsPaused: boolean;
  /** A stream's unsent local bytes changed by `delta` (the session keeps the total bounded). */
  pendingChanged(delta: number): void;
  /** The stream finished (both FINs done, reset, or moved); drop it from the table. */
  streamDone(stream: S, code: number | null): void;
}

/** Watches a server stream until its ACK (Stream.watchOpening): what it sent, and a refusal before the ACK. */
export interface OpeningWatcher {
  /** Bytes `[0, n)` of `chunk` were sent to the peer (the watcher copies what it keeps). */
  sent(chunk: Uint8Array, n: number): void;
  /**
   * The peer reset the stream with `code` before its ACK and before delivering any byte. Returns true when the
   * watcher took the local socket over (it called Stream.handOff); false lets the stream end with `code`.
   */
  refused(code: number): boolean;
}
