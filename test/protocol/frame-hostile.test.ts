/** Hostile stream frames: each decoder check (SPEC.md §2.3) with its exact code, and a 100,000-input fuzz. */
import { describe, expect, test } from "bun:test";
import { TunnelError, type ErrorCode } from "../../src/errors.ts";
import { FRAME_HEADER_BYTES, MAX_CONTROL_PAYLOAD_BYTES, MIN_MAX_FRAME_BYTES } from "../../src/protocol/constants.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { Recorder, feedFrames, oracleEncode, randomEvents } from "../support/protocol-frames.ts";
import { oracleDecode } from "../support/protocol-oracle.ts";
import { Prng, concat, fromHex, splitAt } from "../support/protocol-prng.ts";

const BOUND = FRAME_HEADER_BYTES + MAX_CONTROL_PAYLOAD_BYTES;

/** A header: type, flags, id, length. */
function hdr(type: number, id: number, len: number, flags = 0): Uint8Array {
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, type);
  dv.setUint8(1, flags);
  dv.setUint32(2, id);
  dv.setUint32(6, len);
  return b;
}

/** Pushes exactly the first `n` bytes of `bytes` and returns the error code. */
function failsAfter(bytes: Uint8Array, n: number, maxFrameBytes?: number): ErrorCode | null {
  const dec = new FrameDecoder(new Recorder(), maxFrameBytes === undefined ? undefined : { maxFrameBytes });
  for (let i = 0; i < n - 1; i++) {
    const early = dec.push(bytes.subarray(i, i + 1));
    if (early !== null) throw new Error(`failed early, after ${i + 1} bytes: ${early.code}`);
  }
  return dec.push(bytes.subarray(n - 1, n))?.code ?? null;
}

/** An OPEN payload from parts; lengths are written as given (they may lie). */
function openRaw(svc: string, v: string, r: string, lens?: [number, number, number], trailing = ""): Uint8Array {
  const t = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const [ls, lv, lr] = lens ?? [svc.length, v.length, r.length];
  return concat([Uint8Array.of(ls), t(svc), Uint8Array.of(lv), t(v), Uint8Array.of(0, 80), Uint8Array.of(lr), t(r), Uint8Array.of(0, 81), t(trailing)]);
}

function openFrame(payload: Uint8Array): Uint8Array {
  return concat([hdr(1, 1, payload.length), payload]);
}

describe("frame header checks fail as soon as the field is complete", () => {
  test.each([
    ["unknown type 10", hdr(10, 1, 0), 1, "ERR_FRAME_TYPE"],
    ["unknown type 255", hdr(255, 0, 0), 1, "ERR_FRAME_TYPE"],
    ["flags 1 on DATA", hdr(0, 1, 0, 1), 2, "ERR_FRAME_FLAGS"],
    ["flags 0x80 on PING", hdr(6, 0, 8, 0x80), 2, "ERR_FRAME_FLAGS"],
    ["DATA on stream 0", hdr(0, 0, 0), 6, "ERR_FRAME_STREAM_ID"],
    ["OPEN on stream 0", hdr(1, 0, 8), 6, "ERR_FRAME_STREAM_ID"],
    ["ACK on stream 0", hdr(2, 0, 0), 6, "ERR_FRAME_STREAM_ID"],
    ["FIN on stream 0", hdr(3, 0, 0), 6, "ERR_FRAME_STREAM_ID"],
    ["RST on stream 0", hdr(4, 0, 4), 6, "ERR_FRAME_STREAM_ID"],
    ["WINDOW on stream 0", hdr(5, 0, 4), 6, "ERR_FRAME_STREAM_ID"],
    ["PING on stream 1", hdr(6, 1, 8), 6, "ERR_FRAME_STREAM_ID"],
    ["PONG on stream 1", hdr(7, 1, 8), 6, "ERR_FRAME_STREAM_ID"],
    ["GOAWAY on stream 1", hdr(8, 1, 8), 6, "ERR_FRAME_STREAM_ID"],
    ["CONTROL on stream 1", hdr(9, 1, 2), 6, "ERR_FRAME_STREAM_ID"],
    ["DATA on stream 2^31", hdr(0, 2 ** 31, 0), 6, "ERR_FRAME_STREAM_ID"],
    ["DATA on stream 2^32-1", hdr(0, 2 ** 32 - 1, 0), 6, "ERR_FRAME_STREAM_ID"],
    ["DATA over default max_frame", hdr(0, 1, 262145), 10, "ERR_FRAME_SIZE"],
    ["DATA length 2^32-1", hdr(0, 1, 2 ** 32 - 1), 10, "ERR_FRAME_SIZE"],
    ["OPEN length 7", hdr(1, 1, 7), 10, "ERR_FRAME_SIZE"],
    ["OPEN length 353", hdr(1, 1, 353), 10, "ERR_FRAME_SIZE"],
    ["ACK length 1", hdr(2, 1, 1), 10, "ERR_FRAME_SIZE"],
    ["FIN length 4", hdr(3, 1, 4), 10, "ERR_FRAME_SIZE"],
    ["RST length 3", hdr(4, 1, 3), 10, "ERR_FRAME_SIZE"],
    ["RST length 8", hdr(4, 1, 8), 10, "ERR_FRAME_SIZE"],
    ["WINDOW length 0", hdr(5, 1, 0), 10, "ERR_FRAME_SIZE"],
    ["PING length 7", hdr(6, 0, 7), 10, "ERR_FRAME_SIZE"],
    ["PONG length 9", hdr(7, 0, 9), 10, "ERR_FRAME_SIZE"],
    ["GOAWAY length 4", hdr(8, 0, 4), 10, "ERR_FRAME_SIZE"],
    ["CONTROL length 1", hdr(9, 0, 1), 10, "ERR_FRAME_SIZE"],
    ["CONTROL length 16385", hdr(9, 0, 16385), 10, "ERR_FRAME_SIZE"],
  ] as const)("%s", (_name, bytes, n, code) => {
    expect(failsAfter(bytes, n)).toBe(code);
  });

  test("maxFrameBytes is the DATA limit: n accepted, n+1 refused from the header alone", () => {
    expect(failsAfter(hdr(0, 1, MIN_MAX_FRAME_BYTES), 10, MIN_MAX_FRAME_BYTES)).toBeNull();
    expect(failsAfter(hdr(0, 1, MIN_MAX_FRAME_BYTES + 1), 10, MIN_MAX_FRAME_BYTES)).toBe("ERR_FRAME_SIZE");
  });

  test("the first bad field wins (type before flags before id before length)", () => {
    expect(failsAfter(hdr(10, 0, 2 ** 32 - 1, 1), 1)).toBe("ERR_FRAME_TYPE");
    expect(failsAfter(hdr(0, 0, 2 ** 32 - 1, 1), 2)).toBe("ERR_FRAME_FLAGS");
    expect(failsAfter(hdr(0, 0, 2 ** 32 - 1), 6)).toBe("ERR_FRAME_STREAM_ID");
  });
});

describe("frame payload checks", () => {
  const u32 = (x: number) => fromHex(x.toString(16).padStart(8, "0"));
  test.each([
    ["WINDOW increment 0", concat([hdr(5, 1, 4), u32(0)])],
    ["WINDOW increment 2^31", concat([hdr(5, 1, 4), u32(2 ** 31)])],
    ["GOAWAY last id 2^31", concat([hdr(8, 0, 8), u32(2 ** 31), u32(0)])],
    ["OPEN empty service", openFrame(openRaw("", "1.2.3.4", "", [0, 7, 0], "x"))],
    ["OPEN service with a space", openFrame(openRaw("a b", "", ""))],
    ["OPEN service with a slash", openFrame(openRaw("a/b", "", ""))],
    ["OPEN service non-ASCII", openFrame(openRaw("caf\xe9", "", ""))],
    ["OPEN visitor address 46 bytes", openFrame(openRaw("a", "1".repeat(46), ""))],
    ["OPEN route address non-ASCII", openFrame(openRaw("a", "", "\x80"))],
    ["OPEN address with a space", openFrame(openRaw("a", "1.2.3.4 ", ""))],
    ["OPEN address with a control char", openFrame(openRaw("a", "\n", ""))],
    ["OPEN trailing byte", openFrame(openRaw("a", "", "", undefined, "z"))],
    ["OPEN service length past the end", openFrame(openRaw("abcdefgh", "", "", [200, 0, 0]))],
    ["OPEN visitor length past the end", openFrame(openRaw("a", "12", "", [1, 40, 0]))],
    ["OPEN route length past the end", openFrame(openRaw("a", "", "12", [1, 0, 9]))],
  ])("%s → ERR_FRAME_PAYLOAD", (_name, bytes) => {
    expect(feedFrames([bytes]).error).toBe("ERR_FRAME_PAYLOAD");
    expect(failsAfter(bytes, bytes.length)).toBe("ERR_FRAME_PAYLOAD");
  });
});

describe("decoder lifecycle", () => {
  test("frames before the error are delivered, none after; the error is sticky", () => {
    const good = oracleEncode([{ t: "ack", id: 1 }, { t: "fin", id: 2 }]);
    const rec = new Recorder();
    const dec = new FrameDecoder(rec);
    const err = dec.push(concat([good, hdr(10, 0, 0), oracleEncode([{ t: "ack", id: 3 }])]));
    expect(err).toBeInstanceOf(TunnelError);
    expect(err?.code).toBe("ERR_FRAME_TYPE");
    expect(rec.log).toEqual([{ t: "ack", id: 1 }, { t: "fin", id: 2 }]);
    expect(dec.push(oracleEncode([{ t: "ack", id: 4 }]))).toBe(err);
    expect(rec.log.length).toBe(2);
    expect(dec.bufferedBytes).toBe(0);
  });

  test("truncated frames wait, holding at most a header or a control payload", () => {
    const evs = randomEvents(new Prng(5), 50);
    const bytes = oracleEncode(evs);
    for (let cut = 0; cut < bytes.length; cut += 7) {
      const r = feedFrames([bytes.subarray(0, cut)]);
      expect(r.error).toBeNull();
      expect(r.maxBuffered).toBeLessThanOrEqual(MAX_CONTROL_PAYLOAD_BYTES);
    }
  });

  test("an empty push is a no-op", () => {
    const dec = new FrameDecoder(new Recorder());
    expect(dec.push(new Uint8Array(0))).toBeNull();
    expect(dec.bufferedBytes).toBe(0);
  });

  test("handler exceptions propagate out of push", () => {
    const rec = new Recorder();
    rec.handleAck = () => {
      throw new Error("handler bug");
    };
    expect(() => new FrameDecoder(rec).push(oracleEncode([{ t: "ack", id: 1 }]))).toThrow("handler bug");
  });

  test.each([0, MIN_MAX_FRAME_BYTES - 1, 2 ** 24 + 1, 1.5, Number.NaN])("maxFrameBytes %p is refused", (max) => {
    expect(() => new FrameDecoder(new Recorder(), { maxFrameBytes: max })).toThrow(TunnelError);
  });
});

describe("frame decoder fuzz", () => {
  const CODES = new Set<ErrorCode | null>([null, "ERR_FRAME_TYPE", "ERR_FRAME_FLAGS", "ERR_FRAME_STREAM_ID", "ERR_FRAME_SIZE", "ERR_FRAME_PAYLOAD"]);

  /** A hostile input: random bytes, plausible headers, mutated or truncated valid streams. */
  function hostile(rng: Prng): Uint8Array {
    switch (rng.int(4)) {
      case 0:
        return rng.bytes(rng.int(48));
      case 1: {
        const b = rng.bytes(rng.range(1, 40));
        b[0] = rng.int(11);
        if (rng.int(4) > 0) b[1] = 0;
        if (rng.int(2)) b.fill(0, 2, Math.min(b.length, 3 + rng.int(4)));
        if (b.length >= 10 && rng.int(2)) b.set([0, 0, 0, rng.int(24)], 6);
        return b;
      }
      default: {
        const b = oracleEncode(randomEvents(rng, rng.range(1, 3), 24));
        for (let k = rng.int(3); k >= 0; k--) b[rng.int(b.length)] = rng.int(3) ? rng.int(256) : b[rng.int(b.length)]! ^ (1 << rng.int(8));
        return rng.int(3) === 0 ? b.subarray(0, rng.int(b.length + 1)) : b;
      }
    }
  }

  test("100,000 hostile inputs: never throws, agrees with the oracle, stays bounded", () => {
    const rng = new Prng(0xf00d);
    const seen = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const input = hostile(rng);
      const r = feedFrames(splitAt(input, rng, rng.int(4)), MIN_MAX_FRAME_BYTES);
      const o = oracleDecode(input, MIN_MAX_FRAME_BYTES);
      if (!CODES.has(r.error) || r.error !== o.error || r.maxBuffered > BOUND || !Bun.deepEquals(r.log, o.log)) {
        throw new Error(`input ${i} (${Buffer.from(input).toString("hex")}): got ${r.error}, oracle ${o.error}`);
      }
      seen.set(String(r.error), (seen.get(String(r.error)) ?? 0) + 1);
    }
    // Every outcome is exercised, so the agreement above means something.
    for (const c of CODES) expect(seen.get(String(c)) ?? 0).toBeGreaterThan(100);
  });
});
