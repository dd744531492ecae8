/**
 * Datagrams on a datagram flow (SPEC.md §2.5): the stream's DATA bytes are a sequence of records, each a uint16
 * length and that many bytes of one datagram (0..MAX_DATAGRAM_BYTES). A record may span DATA frames and a frame may
 * hold several records: the reader cuts records out of the stream's bytes, whatever the frame boundaries. Pure.
 */
import { TunnelError } from "../errors.ts";
import { DATAGRAM_PREFIX_BYTES, MAX_DATAGRAM_BYTES } from "./constants.ts";

/**
 * One record for `payload`: its length prefix and a copy of its bytes (the caller owns the result).
 * @throws TunnelError ERR_INTERNAL when `payload` is longer than MAX_DATAGRAM_BYTES (callers drop those first).
 */
export function datagramRecord(payload: Uint8Array): Uint8Array {
  const n = payload.byteLength;
  if (n > MAX_DATAGRAM_BYTES) throw new TunnelError("ERR_INTERNAL", `datagram of ${n} bytes`);
  const out = new Uint8Array(DATAGRAM_PREFIX_BYTES + n);
  out[0] = n >>> 8;
  out[1] = n & 0xff;
  out.set(payload, DATAGRAM_PREFIX_BYTES);
  return out;
}

/** First allocation for a record that straddles chunks; it grows (doubling, up to the record) as bytes arrive. */
const PARTIAL_START_BYTES = 4096;

/**
 * Cuts whole datagrams out of a flow's bytes. Holds at most one partial record (≤ 2 + 65,507 bytes, copied); a record
 * inside one pushed chunk is passed on as a view of it, without a copy.
 */
export class DatagramReader {
  /**
   * The bytes so far of a record that straddles chunks, in a buffer grown as they arrive (a length prefix alone
   * does not allocate the whole record: a peer could announce 64 KiB per flow and send nothing more).
   */
  private partial: Uint8Array | null = null;
  private have = 0;
  /** The partial record's length. */
  private want = 0;
  /** Length prefix bytes held while the prefix itself straddles chunks. */
  private readonly prefix = new Uint8Array(DATAGRAM_PREFIX_BYTES);
  private prefixHave = 0;
  private error: TunnelError | null = null;

  /** @param onDatagram gets each whole datagram, a view valid only during the call. */
  constructor(private readonly onDatagram: (datagram: Uint8Array) => void) {}

  /** Bytes held of a record not yet complete. */
  get bufferedBytes(): number {
    return this.prefixHave + this.have;
  }

  /** Bytes allocated for the partial record (at most a little over twice what arrived of it, or 4 KiB). */
  get allocatedBytes(): number {
    return this.partial?.byteLength ?? 0;
  }

  /**
   * Takes the next bytes of the flow. Returns null, or ERR_FRAME_PAYLOAD for a length above MAX_DATAGRAM_BYTES
   * (then, and for every later push, nothing more is delivered). Never throws on peer input.
   */
  push(chunk: Uint8Array): TunnelError | null {
    if (this.error !== null) return this.error;
    let pos = 0;
    const end = chunk.byteLength;
    while (pos < end) {
      if (this.partial !== null) {
        pos = this.fill(chunk, pos);
        continue;
      }
      if (this.prefixHave > 0 || end - pos < DATAGRAM_PREFIX_BYTES) {
        this.prefix[this.prefixHave++] = chunk[pos++] as number;
        if (this.prefixHave < DATAGRAM_PREFIX_BYTES) continue;
        this.prefixHave = 0;
        const err = this.begin(((this.prefix[0] as number) << 8) | (this.prefix[1] as number));
        if (err !== null) return err;
        continue;
      }
      const len = ((chunk[pos] as number) << 8) | (chunk[pos + 1] as number);
      if (len > MAX_DATAGRAM_BYTES) return this.fail(len);
      if (end - pos - DATAGRAM_PREFIX_BYTES >= len) {
        this.onDatagram(chunk.subarray(pos + DATAGRAM_PREFIX_BYTES, pos + DATAGRAM_PREFIX_BYTES + len));
        pos += DATAGRAM_PREFIX_BYTES + len;
        continue;
      }
      pos += DATAGRAM_PREFIX_BYTES;
      const err = this.begin(len);
      if (err !== null) return err;
    }
    return null;
  }

  /** A record of `len` bytes starts; its bytes follow in later chunks. */
  private begin(len: number): TunnelError | null {
    if (len > MAX_DATAGRAM_BYTES) return this.fail(len);
    if (len === 0) {
      this.onDatagram(new Uint8Array(0));
      return null;
    }
    this.partial = new Uint8Array(Math.min(len, PARTIAL_START_BYTES));
    this.have = 0;
    this.want = len;
    return null;
  }

  private fill(chunk: Uint8Array, pos: number): number {
    const n = Math.min(this.want - this.have, chunk.byteLength - pos);
    let buf = this.partial as Uint8Array;
    if (this.have + n > buf.byteLength) {
      const grown = new Uint8Array(Math.min(this.want, Math.max(2 * buf.byteLength, this.have + n)));
      grown.set(buf.subarray(0, this.have));
      this.partial = buf = grown;
    }
    buf.set(chunk.subarray(pos, pos + n), this.have);
    this.have += n;
    if (this.have === this.want) {
      this.partial = null;
      this.have = 0;
      this.onDatagram(buf);
    }
    return pos + n;
  }

  private fail(len: number): TunnelError {
    this.error = new TunnelError("ERR_FRAME_PAYLOAD", `datagram length ${len} over ${MAX_DATAGRAM_BYTES}`);
    return this.error;
  }
}
