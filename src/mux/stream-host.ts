/**
 * The contract between a stream and its session: what a Stream (stream.ts) needs from it, implemented by SessionCore.
 */
import type { Stream } from "./stream.ts";

/** What a stream needs from its session (implemented by SessionCore, session-core.ts). */
export interface StreamHost {
  /** True while the session's staging buffer is below its high-water mark. */
  canSend(): boolean;
  /** Parks a stream until the session can send again; `pump()` is called then. */
  block(stream: Stream): void;
  sendData(streamId: number, data: Uint8Array, offset: number, length: number): void;
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
  /** The stream finished (both FINs done, or reset); drop it from the table. */
  streamDone(stream: Stream, code: number | null): void;
}
