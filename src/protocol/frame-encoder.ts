/** Batching stream-frame encoder (SPEC.md §2): frames are appended to one staging buffer, written in batches. Pure. */
import { TunnelError } from "../errors.ts";
import {
  DATAGRAM_PREFIX_BYTES,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_DATAGRAM_BYTES,
  MAX_MAX_FRAME_BYTES,
  MIN_CONTROL_MESSAGE_BYTES,
  MAX_STREAM_ID,
  MAX_WINDOW_BYTES,
  OPEN_FLAG_DATAGRAM,
  PING_PAYLOAD_BYTES,
} from "./constants.ts";
import type { OpenPayload } from "./frames.ts";
import { isValidOpenPayload, openPayloadBytes, writeOpenPayload } from "./open-payload.ts";
import { copyBytes } from "./copy-bytes.ts";

export type { OpenPayload } from "./frames.ts";

const DEFAULT_INITIAL_CAPACITY = 65536;

function isStreamId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id <= MAX_STREAM_ID;
}

function isUint32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function misuse(what: string): TunnelError {
  return new TunnelError("ERR_INTERNAL", `FrameEncoder: ${what}`);
}

/**
 * Staging buffer for outgoing frames. Each method appends one complete frame (payloads are copied in, so the
 * caller may reuse its buffers at once); the connection writes {@link pending} and reports what the socket took
 * with {@link consume}. The buffer starts at `initialCapacity` bytes and doubles when a frame does not fit; it
 * never shrinks and is not bounded here (the multiplexer bounds what it queues). Arguments are validated: a bad
 * one is our bug and throws TunnelError ERR_INTERNAL without appending anything.
 */
export class FrameEncoder {
  private buf: Uint8Array;
  private start = 0;
  private end = 0;
  /** Stream of the last frame appended if it is a DATA frame of datagram records nothing was written of, else 0. */
  private openDatagramStream = 0;
  /** That frame's payload length. */
  private openDatagramBytes = 0;

  /**
   * @param initialCapacity staging size in bytes, integer ≥ FRAME_HEADER_BYTES; default 65536.
   * @throws TunnelError ERR_INTERNAL on a bad capacity.
   */
  constructor(private readonly initialCapacity: number = DEFAULT_INITIAL_CAPACITY) {
    if (!Number.isInteger(initialCapacity) || initialCapacity < FRAME_HEADER_BYTES || initialCapacity > 2 ** 30) {
      throw misuse(`initial capacity ${initialCapacity}`);
    }
    this.buf = new Uint8Array(initialCapacity);
  }

  /** Staging size in bytes now (it doubles as needed; {@link trim} shrinks it back). */
  get capacity(): number {
    return this.buf.length;
  }

  /**
   * Gives back staging memory a burst grew (up to 2 MiB per connection): with nothing pending, a buffer larger than
   * the initial capacity is replaced by one of that size. Returns true if it shrank. Meant for a quiet moment (the
   * session calls it on each heartbeat), not per write: a burst would only grow it again.
   */
  trim(): boolean {
    if (this.end !== this.start || this.buf.length <= this.initialCapacity) return false;
    this.buf = new Uint8Array(this.initialCapacity);
    this.start = this.end = 0;
    return true;
  }

  /** Bytes appended and not yet consumed. */
  get pendingBytes(): number {
    return this.end - this.start;
  }

  /** View of the bytes not yet written. Valid until the next append or consume (both may move the bytes). */
  pending(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  /**
   * Marks the first `n` pending bytes as written (the socket accepted them). Resets to the buffer start when
   * nothing is left, and moves the remainder to the start once the consumed prefix is at least half the buffer.
   * @throws TunnelError ERR_INTERNAL if `n` is not an integer 0..pendingBytes.
   */
  consume(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.end - this.start) throw misuse(`consume(${n})`);
    if (n > 0) this.openDatagramStream = 0; // part of the last frame may be written: it no longer grows
    this.start += n;
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    } else if (this.start >= this.buf.length >>> 1) {
      this.compact();
    }
  }

  /**
   * Appends a DATA frame carrying `payload[offset .. offset+length)` (copied with copyBytes: the 10-byte header
   * leaves most payloads misaligned with their source). `length` may be 0.
   * Whether it fits the peer's `max_frame` is the caller's business; the hard cap here is MAX_MAX_FRAME_BYTES.
   * @throws TunnelError ERR_INTERNAL on a stream id outside 1..2^31−1, a range outside `payload`, or a length
   *   over MAX_MAX_FRAME_BYTES.
   */
  data(streamId: number, payload: Uint8Array, offset = 0, length: number = payload.length - offset): void {
    if (!isStreamId(streamId)) throw misuse(`DATA stream id ${streamId}`);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
      throw misuse(`DATA range ${offset}+${length}`);
    }
    if (offset + length > payload.length) throw misuse(`DATA range ${offset}+${length} of ${payload.length}`);
    if (length > MAX_MAX_FRAME_BYTES) throw misuse(`DATA length ${length}`);
    const o = this.header(FrameType.DATA, streamId, length);
    if (length === 0) return;
    copyBytes(this.buf, o, payload, offset, length);
  }

  /**
   * Appends one whole datagram record (SPEC.md §2.5), its uint16 length prefix and `payload`, written straight into
   * the staging buffer. When the last frame appended is a DATA frame of records of the same stream, none of it was
   * consumed yet, and the record fits in `maxPayload` with it, the record joins that frame (one frame, and at the
   * peer one write to the flow, for a burst of datagrams); else it starts a new DATA frame.
   * @throws TunnelError ERR_INTERNAL on a bad stream id, a payload over MAX_DATAGRAM_BYTES, or a record over
   *   `maxPayload`.
   */
  datagram(streamId: number, payload: Uint8Array, maxPayload: number = MAX_MAX_FRAME_BYTES): void {
    if (!isStreamId(streamId)) throw misuse(`DATA stream id ${streamId}`);
    const n = payload.byteLength;
    const record = DATAGRAM_PREFIX_BYTES + n;
    if (n > MAX_DATAGRAM_BYTES || record > maxPayload || maxPayload > MAX_MAX_FRAME_BYTES) throw misuse(`datagram of ${n} bytes`);
    let o: number;
    if (this.openDatagramStream === streamId && this.openDatagramBytes + record <= maxPayload) {
      if (this.end + record > this.buf.length) this.makeRoom(record); // keeps the last frame right before `end`
      const headerAt = this.end - this.openDatagramBytes - FRAME_HEADER_BYTES;
      this.openDatagramBytes += record;
      this.u32(headerAt + 6, this.openDatagramBytes); // the frame's length field
      o = this.end;
      this.end += record;
    } else {
      o = this.header(FrameType.DATA, streamId, record);
      this.openDatagramStream = streamId;
      this.openDatagramBytes = record;
    }
    this.buf[o] = n >>> 8;
    this.buf[o + 1] = n & 0xff;
    if (n > 0) copyBytes(this.buf, o + DATAGRAM_PREFIX_BYTES, payload, 0, n);
  }

  /**
   * Appends an OPEN frame (SPEC.md §2.1).
   * @throws TunnelError ERR_INTERNAL on a bad stream id, service name (1..255 of `[A-Za-z0-9._-]`), address text
   *   (0..45 printable ASCII) or port (0..65535).
   */
  open(streamId: number, open: OpenPayload): void {
    if (!isStreamId(streamId)) throw misuse(`OPEN stream id ${streamId}`);
    if (!isValidOpenPayload(open)) throw misuse(`OPEN payload ${JSON.stringify(open)}`);
    const o = this.header(FrameType.OPEN, streamId, openPayloadBytes(open));
    if (open.datagram === true) this.buf[o - FRAME_HEADER_BYTES + 1] = OPEN_FLAG_DATAGRAM;
    writeOpenPayload(this.buf, o, open);
  }

  /** Appends an ACK frame. @throws TunnelError ERR_INTERNAL on a bad stream id. */
  ack(streamId: number): void {
    if (!isStreamId(streamId)) throw misuse(`ACK stream id ${streamId}`);
    this.header(FrameType.ACK, streamId, 0);
  }

  /** Appends a FIN frame. @throws TunnelError ERR_INTERNAL on a bad stream id. */
  fin(streamId: number): void {
    if (!isStreamId(streamId)) throw misuse(`FIN stream id ${streamId}`);
    this.header(FrameType.FIN, streamId, 0);
  }

  /** Appends an RST frame with a wire code (uint32). @throws TunnelError ERR_INTERNAL on a bad id or code. */
  rst(streamId: number, code: number): void {
    if (!isStreamId(streamId) || !isUint32(code)) throw misuse(`RST ${streamId} code ${code}`);
    this.u32(this.header(FrameType.RST, streamId, 4), code);
  }

  /** Appends a WINDOW frame granting `increment` bytes, 1..2^31−1. @throws TunnelError ERR_INTERNAL if invalid. */
  window(streamId: number, increment: number): void {
    if (!isStreamId(streamId) || !Number.isInteger(increment) || increment < 1 || increment > MAX_WINDOW_BYTES) {
      throw misuse(`WINDOW ${streamId} increment ${increment}`);
    }
    this.u32(this.header(FrameType.WINDOW, streamId, 4), increment);
  }

  /** Appends a PING with exactly 8 opaque bytes (copied). @throws TunnelError ERR_INTERNAL otherwise. */
  ping(opaque: Uint8Array): void {
    if (opaque.length !== PING_PAYLOAD_BYTES) throw misuse(`PING payload of ${opaque.length} bytes`);
    const o = this.header(FrameType.PING, 0, PING_PAYLOAD_BYTES); // may replace this.buf
    this.buf.set(opaque, o);
  }

  /** Appends a PONG echoing exactly 8 opaque bytes (copied). @throws TunnelError ERR_INTERNAL otherwise. */
  pong(opaque: Uint8Array): void {
    if (opaque.length !== PING_PAYLOAD_BYTES) throw misuse(`PONG payload of ${opaque.length} bytes`);
    const o = this.header(FrameType.PONG, 0, PING_PAYLOAD_BYTES); // may replace this.buf
    this.buf.set(opaque, o);
  }

  /**
   * Appends a GOAWAY: `lastStreamId` 0..2^31−1 (0 = none processed), `code` a uint32 wire code.
   * @throws TunnelError ERR_INTERNAL if invalid.
   */
  goAway(lastStreamId: number, code: number): void {
    if (!Number.isInteger(lastStreamId) || lastStreamId < 0 || lastStreamId > MAX_STREAM_ID || !isUint32(code)) {
      throw misuse(`GOAWAY ${lastStreamId} code ${code}`);
    }
    const o = this.header(FrameType.GOAWAY, 0, 8);
    this.u32(o, lastStreamId);
    this.u32(o + 4, code);
  }

  /**
   * Appends a CONTROL frame (stream 0) carrying an encoded CONTROL message (copied), 2..16384 bytes.
   * @throws TunnelError ERR_INTERNAL if the size is out of range.
   */
  control(payload: Uint8Array): void {
    if (payload.length < MIN_CONTROL_MESSAGE_BYTES || payload.length > MAX_CONTROL_MESSAGE_BYTES) {
      throw misuse(`CONTROL payload of ${payload.length} bytes`);
    }
    const o = this.header(FrameType.CONTROL, 0, payload.length);
    this.buf.set(payload, o);
  }

  /** Reserves a frame of `len` payload bytes, writes its header, returns the payload offset. */
  private header(type: number, streamId: number, len: number): number {
    this.openDatagramStream = 0;
    const need = FRAME_HEADER_BYTES + len;
    if (this.end + need > this.buf.length) this.makeRoom(need);
    const o = this.end;
    const b = this.buf;
    b[o] = type;
    b[o + 1] = 0;
    this.u32(o + 2, streamId);
    this.u32(o + 6, len);
    this.end = o + need;
    return o + FRAME_HEADER_BYTES;
  }

  private u32(o: number, v: number): void {
    const b = this.buf;
    b[o] = v >>> 24;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
  }

  /** Makes `need` bytes free after `end`: compacts first, then doubles the buffer until it fits. */
  private makeRoom(need: number): void {
    if (this.start > 0) this.compact();
    const used = this.end;
    if (used + need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < used + need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, used));
    this.buf = next;
  }

  private compact(): void {
    this.buf.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }
}
