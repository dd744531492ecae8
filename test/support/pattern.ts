/**
 * Seeded byte streams that a receiver can verify without storing them: byte i of stream `seed` is
 * block[(i + offset) % PERIOD], where block and offset come from the seed and PERIOD is prime (so chunk and
 * window sizes never line up with it, and a lost, duplicated or reordered range shows as a mismatch).
 */
import { Prng } from "./protocol-prng.ts";

const PERIOD = 65_537;

function blockFor(seed: number): Uint8Array {
  const prng = new Prng(seed);
  const words = new Uint32Array(Math.ceil(PERIOD / 4));
  for (let i = 0; i < words.length; i++) words[i] = (prng.next() * 4294967296) >>> 0;
  // The period twice over, so any window of up to PERIOD bytes is one contiguous subarray.
  const block = new Uint8Array(PERIOD * 2);
  block.set(new Uint8Array(words.buffer, 0, PERIOD), 0);
  block.set(block.subarray(0, PERIOD), PERIOD);
  return block;
}

/** Produces the stream of a seed, chunk by chunk. */
export class PatternSource {
  private readonly block: Uint8Array;
  private pos: number;
  produced = 0;

  constructor(seed: number) {
    this.block = blockFor(seed);
    this.pos = seed % PERIOD;
  }

  /** The next `n` bytes: a view of the pattern (n ≤ 65,537), else or if `copy` a fresh buffer. */
  next(n: number, copy = false): Uint8Array {
    if (n > PERIOD) {
      const out = new Uint8Array(n);
      for (let off = 0; off < n; off += PERIOD) out.set(this.next(Math.min(PERIOD, n - off)), off);
      return out;
    }
    const view = this.block.subarray(this.pos, this.pos + n);
    this.pos = (this.pos + n) % PERIOD;
    this.produced += n;
    return copy ? view.slice() : view;
  }
}

/** Checks received bytes against the stream of a seed. */
export class PatternVerifier {
  private readonly block: Uint8Array;
  private pos: number;
  /** Bytes checked so far. */
  received = 0;
  /** Offset of the first mismatching byte, or -1. */
  firstMismatch = -1;

  constructor(seed: number) {
    this.block = blockFor(seed);
    this.pos = seed % PERIOD;
  }

  /** Verifies the next chunk; records the first mismatch. */
  push(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.byteLength) {
      const n = Math.min(chunk.byteLength - off, PERIOD);
      if (this.firstMismatch < 0) {
        const expected = this.block.subarray(this.pos, this.pos + n);
        if (Buffer.compare(expected, chunk.subarray(off, off + n)) !== 0) {
          for (let i = 0; i < n; i++) {
            if (expected[i] !== chunk[off + i]) {
              this.firstMismatch = this.received + i;
              break;
            }
          }
        }
      }
      this.pos = (this.pos + n) % PERIOD;
      this.received += n;
      off += n;
    }
  }

  /** True if exactly `total` bytes arrived and all matched. */
  ok(total: number): boolean {
    return this.firstMismatch < 0 && this.received === total;
  }
}
