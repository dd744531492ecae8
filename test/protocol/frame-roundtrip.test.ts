/** Round-trip table for every stream frame type: FrameEncoder bytes = oracle bytes, and decode gives the frame back. */
import { describe, expect, test } from "bun:test";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_OPEN_PAYLOAD_BYTES,
  MAX_MAX_FRAME_BYTES,
  MAX_STREAM_ID,
  MAX_WINDOW_BYTES,
  MIN_OPEN_PAYLOAD_BYTES,
  WireCode,
} from "../../src/protocol/constants.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { type Ev, feedFrames, normalize, oracleEncode, randomEvents } from "../support/protocol-frames.ts";
import { oracleDecode } from "../support/protocol-oracle.ts";
import { Prng, splitBytewise } from "../support/protocol-prng.ts";

const MAX_ID = MAX_STREAM_ID;
const maxOpen = {
  service: "S".repeat(255),
  visitorAddress: "f".repeat(45),
  visitorPort: 65535,
  routeAddress: "0".repeat(45),
  routePort: 65535,
};
const minOpen = { service: "a", visitorAddress: "", visitorPort: 0, routeAddress: "", routePort: 0 };
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);

/** [name, event, payload bytes on the wire] */
const cases: [string, Ev, number][] = [
  ["DATA empty, id 1", { t: "data", id: 1, bytes: new Uint8Array(0) }, 0],
  ["DATA 1 byte, max id", { t: "data", id: MAX_ID, bytes: pattern(1) }, 1],
  ["DATA default max_frame", { t: "data", id: 5, bytes: pattern(DEFAULT_MAX_FRAME_BYTES) }, DEFAULT_MAX_FRAME_BYTES],
  ["OPEN minimal", { t: "open", id: 1, open: minOpen }, MIN_OPEN_PAYLOAD_BYTES],
  ["OPEN maximal, max id", { t: "open", id: MAX_ID, open: maxOpen }, MAX_OPEN_PAYLOAD_BYTES],
  [
    "OPEN IPv6",
    { t: "open", id: 9, open: { service: "ssh.prod-1_a", visitorAddress: "2001:db8::1", visitorPort: 51000, routeAddress: "::", routePort: 2222 } },
    1 + 12 + 1 + 11 + 2 + 1 + 2 + 2,
  ],
  ["ACK id 1", { t: "ack", id: 1 }, 0],
  ["ACK max id", { t: "ack", id: MAX_ID }, 0],
  ["FIN id 1", { t: "fin", id: 1 }, 0],
  ["FIN max id", { t: "fin", id: MAX_ID }, 0],
  ["RST code 0", { t: "rst", id: 1, code: WireCode.NO_ERROR }, 4],
  ["RST max code, max id", { t: "rst", id: MAX_ID, code: 2 ** 32 - 1 }, 4],
  ["WINDOW 1", { t: "window", id: 1, inc: 1 }, 4],
  ["WINDOW max increment", { t: "window", id: MAX_ID, inc: MAX_WINDOW_BYTES }, 4],
  ["PING zeros", { t: "ping", opaque: new Uint8Array(8) }, 8],
  ["PING ones", { t: "ping", opaque: new Uint8Array(8).fill(255) }, 8],
  ["PONG", { t: "pong", opaque: pattern(8) }, 8],
  ["GOAWAY 0/0", { t: "goaway", last: 0, code: 0 }, 8],
  ["GOAWAY max/max", { t: "goaway", last: MAX_ID, code: 2 ** 32 - 1 }, 8],
  ["CONTROL minimal", { t: "control", bytes: new TextEncoder().encode("{}") }, 2],
  ["CONTROL maximal", { t: "control", bytes: pattern(MAX_CONTROL_MESSAGE_BYTES) }, MAX_CONTROL_MESSAGE_BYTES],
];

function encodeWith(enc: FrameEncoder, e: Ev): void {
  switch (e.t) {
    case "data": return enc.data(e.id, e.bytes);
    case "open": return enc.open(e.id, e.open);
    case "ack": return enc.ack(e.id);
    case "fin": return enc.fin(e.id);
    case "rst": return enc.rst(e.id, e.code);
    case "window": return enc.window(e.id, e.inc);
    case "ping": return enc.ping(e.opaque);
    case "pong": return enc.pong(e.opaque);
    case "goaway": return enc.goAway(e.last, e.code);
    case "control": return enc.control(e.bytes);
  }
}

describe("frame round trip", () => {
  test.each(cases)("%s", (_name, ev, payloadBytes) => {
    const enc = new FrameEncoder(16);
    encodeWith(enc, ev);
    const bytes = enc.pending().slice();
    expect(bytes.length).toBe(FRAME_HEADER_BYTES + payloadBytes);
    expect(bytes).toEqual(oracleEncode([ev]));
    const whole = feedFrames([bytes]);
    expect(whole.error).toBeNull();
    expect(whole.log).toEqual(normalize([ev]));
    expect(oracleDecode(bytes)).toEqual({ log: normalize([ev]), error: null });
    if (bytes.length < 20000) expect(feedFrames(splitBytewise(bytes)).log).toEqual(normalize([ev]));
  });

  test("DATA at MAX_MAX_FRAME_BYTES with the largest maxFrameBytes", () => {
    const payload = new Uint8Array(MAX_MAX_FRAME_BYTES).fill(0xab);
    payload.set(pattern(64), 0);
    payload.set(pattern(64), MAX_MAX_FRAME_BYTES - 64);
    const enc = new FrameEncoder();
    enc.data(MAX_ID, payload);
    const r = feedFrames([enc.pending()], MAX_MAX_FRAME_BYTES);
    expect(r.error).toBeNull();
    expect(r.dataCalls).toBe(1);
    expect(r.log).toEqual([{ t: "data", id: MAX_ID, bytes: payload }]);
  });

  test("DATA with offset and length encodes exactly that range", () => {
    const src = pattern(100);
    const enc = new FrameEncoder(16);
    enc.data(3, src, 10, 20);
    enc.data(3, src, 100, 0);
    expect(enc.pending()).toEqual(oracleEncode([
      { t: "data", id: 3, bytes: src.slice(10, 30) },
      { t: "data", id: 3, bytes: new Uint8Array(0) },
    ]));
  });

  test("a batch of all cases decodes back in order (whole and byte by byte)", () => {
    const evs = cases.map((c) => c[1]).filter((e) => e.t !== "data" || e.bytes.length < 1000);
    const enc = new FrameEncoder(16);
    for (const e of evs) encodeWith(enc, e);
    const bytes = enc.pending().slice();
    expect(bytes).toEqual(oracleEncode(evs));
    expect(feedFrames([bytes]).log).toEqual(normalize(evs));
    expect(feedFrames(splitBytewise(bytes)).log).toEqual(normalize(evs));
  });

  test("DATA views alias the pushed chunk (no copy)", () => {
    const bytes = oracleEncode([{ t: "data", id: 1, bytes: pattern(64) }]);
    const seen: Uint8Array[] = [];
    const dec = new FrameDecoder({ ...noop, handleData: (_id, p) => void seen.push(p) });
    expect(dec.push(bytes)).toBeNull();
    expect(seen[0]!.buffer).toBe(bytes.buffer);
    expect(seen[0]!.byteOffset).toBe(FRAME_HEADER_BYTES);
  });

  test("random batches: encoder = oracle, decoder = events", () => {
    const rng = new Prng(0xc0dec);
    for (let round = 0; round < 200; round++) {
      const evs = randomEvents(rng, 20);
      const enc = new FrameEncoder(64);
      for (const e of evs) encodeWith(enc, e);
      expect(enc.pending()).toEqual(oracleEncode(evs));
      expect(feedFrames([enc.pending().slice()]).log).toEqual(normalize(evs));
    }
  });
});

const noop = {
  handleData() {}, handleOpen() {}, handleAck() {}, handleFin() {}, handleRst() {}, handleWindow() {}, handlePing() {}, handlePong() {}, handleGoAway() {}, handleControl() {},
};
