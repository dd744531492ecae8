/**
 * WebSocket framing (RFC 6455 §5) for the WebSocket binding of the stream protocol (SPEC.md §8): an encoder for
 * binary and control frames (masked from a client, unmasked from a server) and a streaming decoder that hands the
 * payload of binary messages on as it arrives, unmasked in place, without waiting for a message to be complete (the
 * stream protocol makes no assumption about message boundaries). Pure; peer input never makes it throw.
 */

/** Frame opcodes (RFC 6455 §5.2). */
export const WsOp = { CONTINUATION: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

/** Close codes used here (RFC 6455 §7.4.1). */
export const WsClose = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
} as const;

/** Largest payload a sender puts in one message (SPEC.md §8); receivers accept at least this much. */
export const WS_SEND_MESSAGE_BYTES = 256 * 1024;
/** Largest control frame payload (RFC 6455 §5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/** Where an encoded frame's payload starts in its buffer: 4-aligned, room for the longest header (14 bytes). */
const PAYLOAD_AT = 16;

/** An encoded frame: `buf.subarray(offset, offset + length)` is the frame's bytes. */
export interface EncodedFrame {
  buf: Uint8Array;
  offset: number;
  length: number;
}

/**
 * Encodes one final frame with `payload` (a copy); with `maskKey` (4 bytes; a client's frames must be masked) the
 * payload is masked. The payload is copied to a 4-aligned offset so that masking runs a word at a time.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, maskKey: Uint8Array | null): EncodedFrame {
  const n = payload.byteLength;
  const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const headerLen = 2 + lenBytes + (maskKey ? 4 : 0);
  const buf = new Uint8Array(PAYLOAD_AT + n);
  const at = PAYLOAD_AT - headerLen;
  buf[at] = 0x80 | opcode;
  const maskBit = maskKey ? 0x80 : 0;
  if (lenBytes === 0) buf[at + 1] = maskBit | n;
  else if (lenBytes === 2) {
    buf[at + 1] = maskBit | 126;
    buf[at + 2] = n >>> 8;
    buf[at + 3] = n & 0xff;
  } else {
    buf[at + 1] = maskBit | 127;
    const view = new DataView(buf.buffer, at + 2, 8);
    view.setUint32(0, Math.floor(n / 2 ** 32));
    view.setUint32(4, n >>> 0);
  }
  buf.set(payload, PAYLOAD_AT);
  if (maskKey) {
    buf.set(maskKey, PAYLOAD_AT - 4);
    maskInPlace(buf.subarray(PAYLOAD_AT), maskKey, 0);
  }
  return { buf, offset: at, length: headerLen + n };
}

/** A Close frame's payload: the code and a short reason (truncated to fit a control frame). */
export function closePayload(code: number, reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason).subarray(0, MAX_CONTROL_PAYLOAD - 2);
  const out = new Uint8Array(2 + text.byteLength);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/**
 * XORs `bytes` with the masking key in place, `position` being the offset of `bytes[0]` within the frame's payload
 * (RFC 6455 §5.3). Runs a 32-bit word at a time over the 4-aligned middle.
 */
export function maskInPlace(bytes: Uint8Array, key: Uint8Array, position: number): void {
  const n = bytes.byteLength;
  let i = 0;
  // Bytes up to the first 4-aligned address.
  const lead = Math.min(n, (4 - (bytes.byteOffset & 3)) & 3);
  for (; i < lead; i++) bytes[i] = (bytes[i] as number) ^ (key[(position + i) & 3] as number);
  const words = (n - i) >>> 2;
  if (words > 0) {
    const p = (position + i) & 3;
    // The key rotated to start at byte p, read as a little-endian word (typed arrays use the platform's order:
    // little-endian on every platform Bun runs on).
    const k = (key[p] as number) | ((key[(p + 1) & 3] as number) << 8) | ((key[(p + 2) & 3] as number) << 16) | ((key[(p + 3) & 3] as number) << 24);
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let j = 0; j < words; j++) w[j] = (w[j] as number) ^ k;
    i += words * 4;
  }
  for (; i < n; i++) bytes[i] = (bytes[i] as number) ^ (key[(position + i) & 3] as number);
}

/** Receives what a {@link WsDecoder} decodes. */
export interface WsSink {
  /** Payload bytes of a binary message (a view of the pushed chunk, unmasked). Any size, message boundaries lost. */
  onBinary(bytes: Uint8Array): void;
  /** A complete control frame: CLOSE, PING or PONG (payload copied). */
  onControl(opcode: number, payload: Uint8Array): void;
  /** The peer broke the rules: the connection must be closed with `closeCode`; nothing more is decoded. */
  onViolation(closeCode: number, reason: string): void;
}

/** Options: whether frames must be masked (a server's decoder) and the largest message accepted. */
export interface WsDecoderOptions {
  expectMasked: boolean;
  maxMessageBytes: number;
}

/**
 * Decodes WebSocket frames from a byte stream. Text messages, unknown opcodes, reserved bits, a masking that does
 * not fit the role, a fragmented or oversized control frame and a message over `maxMessageBytes` are violations.
 */
export class WsDecoder {
  private header = new Uint8Array(14);
  private headerFill = 0;
  /** Payload bytes still to come in the current frame (-1: reading a header). */
  private remaining = -1;
  private position = 0;
  private opcode = 0;
  private mask: Uint8Array | null = null;
  private control: Uint8Array | null = null;
  /** Bytes of the binary message in progress (its frames so far); -1 outside a fragmented message. */
  private messageBytes = -1;
  private failed = false;

  constructor(private readonly opts: WsDecoderOptions) {}

  /** Feeds a chunk (it may be unmasked in place). */
  push(chunk: Uint8Array, sink: WsSink): void {
    let at = 0;
    while (at < chunk.byteLength && !this.failed) {
      if (this.remaining < 0) {
        at = this.readHeader(chunk, at, sink);
        continue;
      }
      const take = Math.min(this.remaining, chunk.byteLength - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.payload(piece, sink);
    }
  }

  private payload(piece: Uint8Array, sink: WsSink): void {
    if (this.mask) maskInPlace(piece, this.mask, this.position);
    this.position += piece.byteLength;
    this.remaining -= piece.byteLength;
    if (this.control) this.control.set(piece, this.position - piece.byteLength);
    else if (piece.byteLength > 0) sink.onBinary(piece);
    if (this.remaining === 0) this.frameDone(sink);
  }

  private frameDone(sink: WsSink): void {
    this.remaining = -1;
    if (this.control) {
      const c = this.control;
      this.control = null;
      sink.onControl(this.opcode, c);
    }
  }

  /** Reads header bytes from `chunk[at..]`; returns where reading stopped. */
  private readHeader(chunk: Uint8Array, at: number, sink: WsSink): number {
    const h = this.header;
    while (at < chunk.byteLength) {
      h[this.headerFill++] = chunk[at++] as number;
      const need = this.headerNeed();
      if (this.headerFill < need) continue;
      this.headerFill = 0;
      this.startFrame(sink);
      if (this.remaining === 0) this.frameDone(sink);
      return at;
    }
    return at;
  }

  /** Header length given the bytes so far (2 until the length byte is known). */
  private headerNeed(): number {
    if (this.headerFill < 2) return 2;
    const b1 = this.header[1] as number;
    const len7 = b1 & 0x7f;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
  }

  private startFrame(sink: WsSink): void {
    const h = this.header;
    const b0 = h[0] as number, b1 = h[1] as number;
    const fin = (b0 & 0x80) !== 0, opcode = b0 & 0x0f, masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    let len = len7;
    let p = 2;
    if (len7 === 126) {
      len = ((h[2] as number) << 8) | (h[3] as number);
      p = 4;
    } else if (len7 === 127) {
      const view = new DataView(h.buffer, h.byteOffset + 2, 8);
      len = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
      p = 10;
    }
    const why = this.check(b0, opcode, fin, masked, len);
    if (why !== null) return this.violate(sink, why[0], why[1]);
    this.opcode = opcode;
    this.mask = masked ? h.slice(p, p + 4) : null;
    this.position = 0;
    this.remaining = len;
    if (opcode >= WsOp.CLOSE) this.control = new Uint8Array(len);
    else this.messageBytes = fin ? -1 : this.messageBytes < 0 ? len : this.messageBytes + len;
  }

  /** Why a frame header is refused ([close code, reason]), or null. */
  private check(b0: number, opcode: number, fin: boolean, masked: boolean, len: number): [number, string] | null {
    if ((b0 & 0x70) !== 0) return [WsClose.PROTOCOL_ERROR, "reserved bits set (no extension was agreed)"];
    if (masked !== this.opts.expectMasked) return [WsClose.PROTOCOL_ERROR, masked ? "masked frame from the server" : "unmasked frame from the client"];
    if (opcode === WsOp.TEXT) return [WsClose.UNSUPPORTED_DATA, "text message: only binary messages are accepted"];
    if (opcode >= WsOp.CLOSE) {
      if (opcode > WsOp.PONG) return [WsClose.PROTOCOL_ERROR, `unknown opcode ${opcode}`];
      if (!fin || len > MAX_CONTROL_PAYLOAD) return [WsClose.PROTOCOL_ERROR, "fragmented or oversized control frame"];
      return null;
    }
    if (opcode !== WsOp.BINARY && opcode !== WsOp.CONTINUATION) return [WsClose.PROTOCOL_ERROR, `unknown opcode ${opcode}`];
    const continuing = this.messageBytes >= 0;
    if (opcode === WsOp.CONTINUATION && !continuing) return [WsClose.PROTOCOL_ERROR, "continuation without a message"];
    if (opcode === WsOp.BINARY && continuing) return [WsClose.PROTOCOL_ERROR, "new message inside a fragmented one"];
    const total = (continuing ? this.messageBytes : 0) + len;
    if (total > this.opts.maxMessageBytes) return [WsClose.MESSAGE_TOO_BIG, `message over ${this.opts.maxMessageBytes} bytes`];
    return null;
  }

  private violate(sink: WsSink, code: number, reason: string): void {
    this.failed = true;
    sink.onViolation(code, reason);
  }
}

/**
 * The largest message a receiver accepts (SPEC.md §8): {@link WS_SEND_MESSAGE_BYTES}, or one largest DATA frame
 * with its 9-byte header if that is more.
 */
export function wsMaxMessageBytes(maxFrameBytes: number): number {
  return Math.max(WS_SEND_MESSAGE_BYTES, maxFrameBytes + 9);
}
