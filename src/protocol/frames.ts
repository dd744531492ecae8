/**
 * Stream frame types shared by the decoder and the encoder (SPEC.md §2): the OPEN payload and the handler the
 * decoder calls. A leaf: `FrameDecoder` (frame-decoder.ts) and `FrameEncoder` (frame-encoder.ts) import these types
 * from here, so this file imports neither.
 */

/** Decoded OPEN payload (SPEC.md §2.1). Addresses are IP texts (`203.0.113.7`, `2001:db8::1`), `""` if unknown. */
export interface OpenPayload {
  /** Service name, 1..255 characters of `[A-Za-z0-9._-]`. */
  service: string;
  /** Visitor's IP address as text, 0..45 printable ASCII characters. */
  visitorAddress: string;
  /** Visitor's port, 0..65535 (0 if unknown). */
  visitorPort: number;
  /** Address the visitor connected to (the route listener), 0..45 printable ASCII characters. */
  routeAddress: string;
  /** Port of the route listener, 0..65535. */
  routePort: number;
  /**
   * A datagram flow (UDP): OPEN carries flag 0x01 and the stream's DATA is a sequence of length-prefixed datagrams
   * (SPEC.md §2.5). Absent or false: a byte stream (TCP).
   */
  datagram?: boolean;
}

/**
 * Receives decoded frames from `FrameDecoder.push` (frame-decoder.ts), synchronously and in wire order. Stream
 * ids are 1..2^31−1 for stream frames. Exceptions thrown by a handler propagate out of `push`; the decoder must
 * then be discarded. A handler must not call `push` on the same decoder.
 */
export interface FrameHandler {
  /**
   * DATA payload bytes. `payload` is a VIEW (subarray) of the pushed chunk, never a copy: it stays valid as long as
   * the caller keeps the chunk unmodified. A payload straddling chunks arrives as one call per chunk part; a
   * zero-length DATA frame gives exactly one call with an empty view.
   */
  handleData(streamId: number, payload: Uint8Array): void;
  /** OPEN: the server asks the agent to open a stream to `open.service`. */
  handleOpen(streamId: number, open: OpenPayload): void;
  /** ACK: the agent connected the target. */
  handleAck(streamId: number): void;
  /** FIN: the peer sends no more DATA on this stream. */
  handleFin(streamId: number): void;
  /** RST: stream aborted; `code` is any uint32 (known ones in `WireCode`). */
  handleRst(streamId: number, code: number): void;
  /** WINDOW: `increment` bytes of credit, 1..2^31−1. */
  handleWindow(streamId: number, increment: number): void;
  /** PING: `opaque` is 8 bytes, valid only during the call (copy it to answer later). */
  handlePing(opaque: Uint8Array): void;
  /** PONG: `opaque` is 8 bytes, valid only during the call. */
  handlePong(opaque: Uint8Array): void;
  /** GOAWAY: `lastStreamId` 0..2^31−1; `code` is any uint32. */
  handleGoAway(lastStreamId: number, code: number): void;
  /** CONTROL (aside connections, SPEC.md §4): the JSON payload, a view valid only during the call. */
  handleControl(payload: Uint8Array): void;
}
