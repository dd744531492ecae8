/**
 * Copying bytes between buffers whose offsets differ modulo 64, fast. Pure.
 *
 * `Uint8Array#set` ends in glibc's memmove, which uses `rep movsb` from about 2 KiB up (x86_rep_movsb_threshold,
 * 2112 bytes on this machine kind). On the AMD EPYC vCPUs measured, `rep movsb` copies about 10× slower when source
 * and destination are not co-aligned: 2.5 vs 35 GB/s for 256 KiB in L2. A DATA payload staged behind its 10-byte
 * header is rarely co-aligned with the read it comes from, so that copy alone was ~14% of the framing process's
 * samples. Below the threshold memmove uses vector loops, which copy misaligned bytes at 16–24 GB/s.
 */

/** Largest piece copied by one native call when the two ranges are not co-aligned (below every rep-movsb threshold). */
export const COPY_PIECE_BYTES = 2048;

/** Buffer#copy(target, targetStart, sourceStart, sourceEnd) on any Uint8Array: a native copy without a view per piece. */
const bufferCopy = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

/**
 * Copies `src[from .. from+n)` to `dst[at .. at+n)`, exactly like `dst.set(src.subarray(from, from + n), at)`.
 * When the two ranges are co-aligned (equal offsets modulo 64 from their ArrayBuffers' starts, which large
 * ArrayBuffers have 64-byte aligned), or `n` ≤ COPY_PIECE_BYTES, that is one native copy; otherwise it copies in
 * pieces of COPY_PIECE_BYTES. A wrong guess about the buffers' alignment costs speed, never correctness.
 * Preconditions (the caller's, unchecked): integer arguments, both ranges inside their arrays, `src` and `dst`
 * not overlapping. Never throws when they hold.
 */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, from: number, n: number): void {
  if (n <= COPY_PIECE_BYTES || ((dst.byteOffset + at - src.byteOffset - from) & 63) === 0) {
    dst.set(from === 0 && n === src.length ? src : src.subarray(from, from + n), at);
    return;
  }
  const end = from + n;
  for (let i = from; i < end; i += COPY_PIECE_BYTES) {
    bufferCopy.call(src, dst, at + (i - from), i, Math.min(end, i + COPY_PIECE_BYTES));
  }
}
