/**
 * copyBytes (src/protocol/copy-bytes.ts): the same bytes as `Uint8Array#set` for every size and relative alignment,
 * on both of its paths (one native copy when co-aligned or small, 2 KiB pieces otherwise), and DATA frames staged
 * through it byte-exact.
 */
import { describe, expect, test } from "bun:test";
import { COPY_PIECE_BYTES, copyBytes } from "../../src/protocol/copy-bytes.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { FrameType } from "../../src/protocol/constants.ts";
import { Prng } from "../support/protocol-prng.ts";

/** `n` random bytes. */
function randomBytes(rng: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

/** copyBytes and the reference (`set`) on copies of the same destination: the results must be identical. */
function check(dst: Uint8Array, at: number, src: Uint8Array, from: number, n: number): void {
  const want = dst.slice();
  want.set(src.subarray(from, from + n), at);
  const got = dst.slice();
  copyBytes(got, at, src, from, n);
  expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
}

describe("copyBytes", () => {
  const rng = new Prng(71);
  const src = randomBytes(rng, 300 * 1024);
  const dst = randomBytes(rng, 300 * 1024);
  const sizes = [0, 1, COPY_PIECE_BYTES - 1, COPY_PIECE_BYTES, COPY_PIECE_BYTES + 1, 3 * COPY_PIECE_BYTES + 7, 256 * 1024 + 3];

  test("co-aligned ranges (one native copy): every size, bytes around the range untouched", () => {
    for (const n of sizes) for (const off of [0, 10, 64, 4106]) check(dst, off, src, off, n);
  });

  test("misaligned ranges (copied in pieces): every size and relative offset 1..63", () => {
    for (const n of sizes) for (let d = 1; d < 64; d += n > 100_000 ? 9 : 1) check(dst, 10 + d, src, 10, n);
  });

  test("sources and destinations that are views with their own byteOffset, and Buffers", () => {
    const srcView = src.subarray(13, 200_013);
    const dstView = dst.subarray(7, 250_007);
    for (const n of [5000, 100_000, 199_000]) {
      check(dstView, 3, srcView, 1000, n);
      check(dstView, 0, Buffer.from(srcView), 17, n);
    }
    check(dst, 0, srcView, 0, srcView.length); // the whole source
  });
});

describe("FrameEncoder.data through copyBytes", () => {
  test("large payloads at every alignment behind other frames stage byte-exact", () => {
    const rng = new Prng(72);
    const read = randomBytes(rng, 512 * 1024); // a socket read: payloads are views of it
    const enc = new FrameEncoder(64 * 1024);
    const expected: number[] = [];
    for (let i = 0; i < 24; i++) {
      const offset = rng.int(64 * 1024);
      const length = rng.int(256 * 1024) + COPY_PIECE_BYTES;
      enc.data(1 + i, read, offset, length);
      const header = [FrameType.DATA, 0, 0, 0, 0, 1 + i, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff];
      expected.push(...header);
      for (const b of read.subarray(offset, offset + length)) expected.push(b);
      if (i % 3 === 2) {
        enc.window(1, 1 + i); // shifts the alignment of what follows
        expected.push(FrameType.WINDOW, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1 + i);
      }
      if (i % 5 === 4) {
        const n = rng.int(enc.pendingBytes + 1); // a short write: what stays is moved and appended to
        const written = enc.pending().slice(0, n);
        expect(Buffer.from(written).equals(Buffer.from(expected.slice(0, n)))).toBe(true);
        enc.consume(n);
        expected.splice(0, n);
      }
    }
    expect(Buffer.from(enc.pending()).equals(Buffer.from(expected))).toBe(true);
  });
});
