/** Handshake codec: round trips, key order, the Backchannel hello, decoder lifecycle and `rest` (SPEC.md §1). */
import { describe, expect, test } from "bun:test";
import { isTunnelError } from "../../src/errors.ts";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import {
  type ConnectionInitInfo,
  HandshakeDecoder,
  type HandshakeMessage,
  encodeHandshake,
  readBackchannelHello,
} from "../../src/protocol/handshake.ts";
import { feedHandshake, outcome, rawHandshake } from "../support/protocol-handshake.ts";
import { Prng, concat, splitAt, splitBytewise } from "../support/protocol-prng.ts";

const hello = { version: 1, role: "data", slot: 3, instance: "7f3a9c", window: 2097152, max_frame: 262144 } as const;
const info: ConnectionInitInfo = {
  cluster_name: "edge-berlin",
  weight: 10,
  host_name: "gw-01",
  credential_policy: "token",
  credential: "s3cr3t",
  extra: { backchannel: { ...hello } },
};
const messages: [string, HandshakeMessage][] = [
  ["InitInfo (Backchannel agent)", { flag: 1, body: info }],
  ["InitInfo (MOSN agent)", { flag: 1, body: { cluster_name: "c", weight: 10, host_name: "", credential_policy: "", credential: "", extra: null } }],
  ["response success", { flag: 2, body: { status: 1, connection_id: "c-42", backchannel: { version: 1, window: 2097152, max_frame: 262144 } } }],
  ["response busy", { flag: 2, body: { status: HandshakeStatus.SERVER_BUSY, retry_after_ms: 1500 } }],
  ["response auth failed", { flag: 2, body: { status: 2 } }],
  ["GracefulClose", { flag: 3, body: { addresses: ["10.0.0.5:40112", "10.0.0.5:40113"], cluster_name: "c" } }],
  ["GracefulClose, no addresses", { flag: 3, body: { addresses: [], cluster_name: "c" } }],
  ["InitInfo, non-ASCII host name", { flag: 1, body: { ...info, host_name: "Gerät-ü-😀", extra: null } }],
];

function decodeOne(bytes: Uint8Array, dec = new HandshakeDecoder()) {
  const r = dec.push(bytes);
  if (r.kind !== "frame") throw new Error(`expected a frame, got ${outcome(r)}`);
  return r;
}

describe("handshake round trip", () => {
  test.each(messages)("%s: encode → decode gives the message; whole, byte by byte, random splits", (_n, msg) => {
    const bytes = encodeHandshake(msg);
    expect(decodeOne(bytes).message).toEqual(msg);
    const rng = new Prng(bytes.length);
    const splittings = [splitBytewise(bytes), ...Array.from({ length: 200 }, () => splitAt(bytes, rng, rng.range(1, 8)))];
    for (const chunks of splittings) {
      const f = feedHandshake(chunks);
      expect(f.result.kind === "frame" && f.result.message).toEqual(msg);
      expect(f.pushes).toBe(chunks.length);
      expect(f.maxBuffered).toBeLessThanOrEqual(bytes.length);
    }
  });

  test("JSON keys follow MOSN's Go field order", () => {
    const text = (m: HandshakeMessage) => new TextDecoder().decode(encodeHandshake(m).subarray(8));
    expect(text({ flag: 1, body: { extra: null, credential: "k", credential_policy: "token", host_name: "h", weight: 5, cluster_name: "c" } })).toBe(
      '{"cluster_name":"c","weight":5,"host_name":"h","credential_policy":"token","credential":"k","extra":null}',
    );
    expect(text({ flag: 2, body: { retry_after_ms: 5, backchannel: { max_frame: 16384, window: 9, version: 1 }, connection_id: "x", status: 1 } })).toBe(
      '{"status":1,"connection_id":"x","backchannel":{"version":1,"window":9,"max_frame":16384},"retry_after_ms":5}',
    );
    expect(text({ flag: 3, body: { cluster_name: "c", addresses: ["a"] } })).toBe('{"addresses":["a"],"cluster_name":"c"}');
  });

  test("InitInfo without host_name and extra decodes with \"\" and null; unknown keys are dropped", () => {
    const r = decodeOne(rawHandshake(1, '{"cluster_name":"c","weight":10,"credential_policy":"","credential":"","future":1}'));
    expect(r.message).toEqual({ flag: 1, body: { cluster_name: "c", weight: 10, host_name: "", credential_policy: "", credential: "", extra: null } });
  });

  test("GracefulClose with addresses null (a Go nil slice) decodes as []", () => {
    expect(decodeOne(rawHandshake(3, '{"addresses":null,"cluster_name":"c"}')).message).toEqual({ flag: 3, body: { addresses: [], cluster_name: "c" } });
  });

  test("rest is the view of the bytes after the frame", () => {
    const frame = encodeHandshake(messages[2]![1]);
    const tail = Uint8Array.of(3, 0, 0, 0, 0, 1, 0, 0, 0, 0);
    const chunk = concat([frame, tail]);
    const r = decodeOne(chunk);
    expect(r.rest).toEqual(tail);
    expect(r.rest.buffer).toBe(chunk.buffer);
    const split = feedHandshake([chunk.subarray(0, 5), chunk.subarray(5, frame.length)]);
    expect(split.result.kind === "frame" && split.result.rest.length).toBe(0);
  });

  test("after a frame the decoder is spent: push throws ERR_INTERNAL; bufferedBytes is 0", () => {
    const dec = new HandshakeDecoder();
    decodeOne(encodeHandshake(messages[4]![1]), dec);
    expect(dec.bufferedBytes).toBe(0);
    expect(() => dec.push(new Uint8Array(1))).toThrow(expect.objectContaining({ code: "ERR_INTERNAL" }));
  });
});

describe("readBackchannelHello", () => {
  test("returns the hello, or null without extra.backchannel", () => {
    expect(readBackchannelHello(info)).toEqual(hello);
    expect(readBackchannelHello({ ...info, extra: null })).toBeNull();
    expect(readBackchannelHello({ ...info, extra: { other: 1 } })).toBeNull();
  });

  test.each([
    ["null", null],
    ["an array", [1]],
    ["a string", "v1"],
    ["role other", { ...hello, role: "other" }],
    ["no instance", { ...hello, instance: undefined }],
    ["empty instance", { ...hello, instance: "" }],
    ["window 0", { ...hello, window: 0 }],
    ["window 2^31", { ...hello, window: 2 ** 31 }],
    ["max_frame below 16 KiB", { ...hello, max_frame: 16383 }],
    ["max_frame above 16 MiB", { ...hello, max_frame: 2 ** 24 + 1 }],
    ["slot -1", { ...hello, slot: -1 }],
    ["version 0", { ...hello, version: 0 }],
    ["version 1.5", { ...hello, version: 1.5 }],
  ])("malformed (%s) returns ERR_HANDSHAKE_SHAPE, never throws", (_n, backchannel) => {
    expect(isTunnelError(readBackchannelHello({ ...info, extra: { backchannel } }), "ERR_HANDSHAKE_SHAPE")).toBe(true);
  });

  test("a future version with the same shape is returned (the server answers UNSUPPORTED_VERSION)", () => {
    expect(readBackchannelHello({ ...info, extra: { backchannel: { ...hello, version: 2 } } })).toEqual({ ...hello, version: 2 });
  });
});

describe("encodeHandshake limits and misuse", () => {
  const big = (n: number): HandshakeMessage => ({ flag: 1, body: { ...info, extra: { pad: "x".repeat(n) } } });
  const bodyLen = (m: HandshakeMessage) => encodeHandshake(m, 65535).length - 8;

  test("a body exactly at the limit is encoded, one byte more is ERR_HANDSHAKE_TOO_LARGE", () => {
    const base = bodyLen(big(0));
    expect(encodeHandshake(big(16384 - base)).length).toBe(8 + 16384);
    expect(() => encodeHandshake(big(16385 - base))).toThrow(expect.objectContaining({ code: "ERR_HANDSHAKE_TOO_LARGE" }));
    expect(encodeHandshake(big(16385 - base), 20000).length).toBe(8 + 16385);
  });

  test("the limit is clamped to 65535 (MOSN's uint16 would silently wrap)", () => {
    const base = bodyLen(big(0));
    expect(encodeHandshake(big(65535 - base), 1 << 20).length).toBe(8 + 65535);
    expect(() => encodeHandshake(big(65536 - base), 1 << 20)).toThrow(expect.objectContaining({ code: "ERR_HANDSHAKE_TOO_LARGE" }));
  });

  test.each([
    ["empty cluster_name", { flag: 1, body: { ...info, cluster_name: "" } }],
    ["weight 101", { flag: 1, body: { ...info, weight: 101 } }],
    ["status 256", { flag: 2, body: { status: 256 } }],
    ["BigInt in extra", { flag: 1, body: { ...info, extra: { n: 1n } } }],
    ["extra 9 deep", { flag: 1, body: { ...info, extra: { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } } } }],
    ["flag 4", { flag: 4, body: {} }],
  ])("%s → ERR_INTERNAL", (_n, msg) => {
    expect(() => encodeHandshake(msg as HandshakeMessage)).toThrow(expect.objectContaining({ code: "ERR_INTERNAL" }));
  });

  test("decoder options are validated", () => {
    expect(() => new HandshakeDecoder({ maxBodyBytes: -1 })).toThrow(expect.objectContaining({ code: "ERR_INTERNAL" }));
    expect(() => new HandshakeDecoder({ accept: [4] })).toThrow(expect.objectContaining({ code: "ERR_INTERNAL" }));
  });
});
