/** The frame decoder gives the same events however the byte stream is cut (SPEC.md §2.3). */
import { describe, expect, test } from "bun:test";
import { FRAME_HEADER_BYTES, MAX_CONTROL_PAYLOAD_BYTES, MAX_OPEN_PAYLOAD_BYTES } from "../../src/protocol/constants.ts";
import { feedFrames, normalize, oracleEncode, randomEvents } from "../support/protocol-frames.ts";
import { Prng, splitAt, splitBytewise } from "../support/protocol-prng.ts";

const BOUND = FRAME_HEADER_BYTES + MAX_CONTROL_PAYLOAD_BYTES;

describe("frame decoder split invariance", () => {
  const rng = new Prng(20260701);
  const evs = randomEvents(rng, 400);
  const stream = oracleEncode(evs);
  const expected = normalize(evs);

  test("whole stream", () => {
    const r = feedFrames([stream]);
    expect(r.error).toBeNull();
    expect(r.log).toEqual(expected);
    expect(r.maxBuffered).toBe(0);
  });

  test("byte by byte", () => {
    const r = feedFrames(splitBytewise(stream));
    expect(r.error).toBeNull();
    expect(r.log).toEqual(expected);
    expect(r.maxBuffered).toBeLessThanOrEqual(BOUND);
  });

  test("2000 seeded random splittings (1..200 cuts each)", () => {
    const splitRng = new Prng(7);
    let maxBuffered = 0;
    for (let i = 0; i < 2000; i++) {
      const r = feedFrames(splitAt(stream, splitRng, splitRng.range(1, 200)));
      if (r.error !== null || !Bun.deepEquals(r.log, expected)) {
        throw new Error(`splitting ${i} diverged: error ${r.error}`);
      }
      maxBuffered = Math.max(maxBuffered, r.maxBuffered);
    }
    expect(maxBuffered).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(BOUND);
  });

  test("many short streams cut at every single point", () => {
    const local = new Prng(99);
    for (let s = 0; s < 200; s++) {
      const small = randomEvents(local, 4, 24);
      const bytes = oracleEncode(small);
      const want = normalize(small);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const r = feedFrames([bytes.subarray(0, cut), bytes.subarray(cut)]);
        if (r.error !== null || !Bun.deepEquals(r.log, want)) throw new Error(`stream ${s} cut ${cut} diverged`);
      }
    }
  });

  test("a DATA payload straddling chunks arrives as one onData per chunk part, no empty parts", () => {
    const bytes = oracleEncode([{ t: "data", id: 4, bytes: new Uint8Array(100).fill(9) }]);
    const r = feedFrames([bytes.subarray(0, 10), bytes.subarray(10, 50), bytes.subarray(50, 51), bytes.subarray(51)]);
    expect(r.dataCalls).toBe(3);
    expect(r.maxBuffered).toBe(0);
    const empty = oracleEncode([{ t: "data", id: 4, bytes: new Uint8Array(0) }]);
    expect(feedFrames([empty.subarray(0, 3), empty.subarray(3)]).dataCalls).toBe(1);
  });

  test("bufferedBytes holds only a partial header or a partial control payload", () => {
    const open = oracleEncode([
      { t: "open", id: 1, open: { service: "x".repeat(255), visitorAddress: "1".repeat(45), visitorPort: 1, routeAddress: "2".repeat(45), routePort: 2 } },
    ]);
    expect(feedFrames([open.subarray(0, 9)]).maxBuffered).toBe(9);
    expect(feedFrames([open.subarray(0, open.length - 1)]).maxBuffered).toBe(MAX_OPEN_PAYLOAD_BYTES - 1);
    const control = oracleEncode([{ t: "control", bytes: new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES).fill(0x20) }]);
    const split = feedFrames([control.subarray(0, 100), control.subarray(100, control.length - 1), control.subarray(control.length - 1)]);
    expect(split.maxBuffered).toBe(MAX_CONTROL_PAYLOAD_BYTES - 1);
    expect(split.log).toEqual([{ t: "control", bytes: new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES).fill(0x20) }]);
    const data = oracleEncode([{ t: "data", id: 1, bytes: new Uint8Array(5000) }]);
    expect(feedFrames([data.subarray(0, 4000)]).maxBuffered).toBe(0);
  });
});
