/**
 * Reads kept until an owner knows where they go (a visitor's first bytes while its route is sniffed, an idle raw
 * connection's bytes for its first visitor). Bun hands every read a buffer object of its own, so a peer trickling one
 * byte per read would make a plain list of reads hold an object (about 60–110 bytes of heap) per byte: small reads
 * are copied into gathering buffers instead, large ones kept as they are. Holds about the bytes kept plus one
 * gathering buffer. Never throws.
 */

/** Size of a gathering buffer; reads under a quarter of it are copied in. */
const GATHER_BYTES = 4096;

/** Kept reads, oldest first, same bytes in the same order. */
export class GatheredReads {
  private chunks: Uint8Array[] = [];
  private gather: Uint8Array | null = null;
  private gathered = 0;
  /** Bytes kept. */
  bytes = 0;

  /** Keeps `chunk` (a large one as it is: the caller must not change it afterwards). */
  push(chunk: Uint8Array): void {
    const n = chunk.byteLength;
    this.bytes += n;
    if (n >= GATHER_BYTES / 4) {
      this.chunks.push(chunk);
      this.gather = null;
      return;
    }
    if (this.gather === null || this.gathered + n > GATHER_BYTES) {
      this.gather = new Uint8Array(GATHER_BYTES);
      this.gathered = 0;
      this.chunks.push(this.gather.subarray(0, 0));
    }
    this.gather.set(chunk, this.gathered);
    this.gathered += n;
    this.chunks[this.chunks.length - 1] = this.gather.subarray(0, this.gathered);
  }

  /** Hands over everything kept (oldest first) and forgets it. */
  take(): Uint8Array[] {
    const out = this.chunks;
    this.chunks = [];
    this.gather = null;
    this.bytes = 0;
    return out;
  }
}
