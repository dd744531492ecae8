/** FrameEncoder: batching, short writes via consume(), growth and compaction, and refusal of our own misuse. */
import { describe, expect, test } from "bun:test";
import { TunnelError, isTunnelError } from "../../src/errors.ts";
import { MAX_MAX_FRAME_BYTES, MAX_STREAM_ID } from "../../src/protocol/constants.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import type { OpenPayload } from "../../src/protocol/frames.ts";
import { type Ev, feedFrames, normalize, oracleEncode, randomEvents } from "../support/protocol-frames.ts";
import { Prng, concat } from "../support/protocol-prng.ts";

function append(enc: FrameEncoder, e: Ev): void {
  if (e.t === "data") enc.data(e.id, e.bytes);
  else if (e.t === "open") enc.open(e.id, e.open);
  else if (e.t === "ack") enc.ack(e.id);
  else if (e.t === "fin") enc.fin(e.id);
  else if (e.t === "rst") enc.rst(e.id, e.code);
  else if (e.t === "window") enc.window(e.id, e.inc);
  else if (e.t === "ping") enc.ping(e.opaque);
  else if (e.t === "pong") enc.pong(e.opaque);
  else if (e.t === "goaway") enc.goAway(e.last, e.code);
  else enc.control(e.bytes);
}

describe("FrameEncoder batching", () => {
  test("a batch of 1000 frames decodes back to the same frames", () => {
    const evs = randomEvents(new Prng(11), 1000, 2000);
    const enc = new FrameEncoder(16);
    for (const e of evs) append(enc, e);
    expect(enc.pendingBytes).toBe(oracleEncode(evs).length);
    const r = feedFrames([enc.pending()]);
    expect(r.error).toBeNull();
    expect(r.log).toEqual(normalize(evs));
  });

  test("short writes: consuming random amounts while appending keeps the byte stream exact", () => {
    const rng = new Prng(12);
    for (let round = 0; round < 50; round++) {
      const evs = randomEvents(rng, 200, rng.pick([10, 300, 5000]));
      const enc = new FrameEncoder(rng.pick([16, 64, 4096]));
      const written: Uint8Array[] = [];
      const write = (max: number) => {
        const n = Math.min(enc.pendingBytes, rng.int(max + 1));
        written.push(enc.pending().slice(0, n)); // the socket copies what it accepted
        enc.consume(n);
      };
      for (const e of evs) {
        append(enc, e);
        if (rng.int(3) === 0) write(rng.pick([1, 17, 1000, 100_000]));
      }
      while (enc.pendingBytes > 0) write(rng.pick([1, 999, 70_000]));
      expect(concat(written)).toEqual(oracleEncode(evs));
    }
  });

  test("consume(all) resets; pending() reflects exactly the unwritten bytes", () => {
    const enc = new FrameEncoder(64);
    enc.ack(1);
    enc.fin(2);
    const all = enc.pending().slice();
    enc.consume(3);
    expect(enc.pending()).toEqual(all.subarray(3));
    enc.consume(0);
    expect(enc.pendingBytes).toBe(17);
    enc.consume(17);
    expect(enc.pendingBytes).toBe(0);
    expect(enc.pending().length).toBe(0);
    enc.ack(3);
    expect(enc.pending()).toEqual(oracleEncode([{ t: "ack", id: 3 }]));
  });

  test("grows by doubling past the initial capacity and keeps pending bytes", () => {
    const enc = new FrameEncoder(16);
    enc.ack(1);
    enc.consume(4);
    const big = new Uint8Array(1 << 20).fill(7);
    enc.data(9, big);
    expect(enc.pendingBytes).toBe(6 + 10 + big.length);
    expect(enc.pending().subarray(0, 6)).toEqual(oracleEncode([{ t: "ack", id: 1 }]).subarray(4));
    expect(enc.pending().subarray(16)).toEqual(big);
  });

  test("trim gives a grown buffer back only when nothing is pending; frames after it are exact", () => {
    const enc = new FrameEncoder(1024);
    expect(enc.trim()).toBe(false); // not grown
    enc.data(1, new Uint8Array(300_000).fill(3));
    expect(enc.capacity).toBe(512 * 1024);
    expect(enc.trim()).toBe(false); // bytes pending: kept
    expect(enc.capacity).toBe(512 * 1024);
    enc.consume(enc.pendingBytes - 5);
    expect(enc.trim()).toBe(false);
    enc.consume(5);
    expect(enc.trim()).toBe(true);
    expect([enc.capacity, enc.pendingBytes]).toEqual([1024, 0]);
    enc.ack(7);
    expect(enc.pending()).toEqual(oracleEncode([{ t: "ack", id: 7 }]));
  });

  test("consume compacts only once the consumed prefix is half the buffer; appends compact before growing", () => {
    const enc = new FrameEncoder(64);
    enc.data(1, new Uint8Array(30)); // 40 bytes pending
    enc.consume(20);
    expect(enc.pending().byteOffset).toBe(20); // less than half consumed: no copy
    enc.consume(12);
    expect(enc.pending().byteOffset).toBe(0); // 32 of 64 consumed: moved to the start
    expect(enc.pendingBytes).toBe(8);
    enc.consume(7);
    enc.data(2, new Uint8Array(50)); // 8 + 60 > 64, but 1 + 60 fits after compaction: no growth
    expect(enc.pending().buffer.byteLength).toBe(64);
    expect(enc.pendingBytes).toBe(61);
    enc.ack(3); // 71 bytes: grows by doubling
    expect(enc.pending().buffer.byteLength).toBe(128);
  });

  test("copies payloads: mutating the source after append does not change the staged frame", () => {
    const enc = new FrameEncoder();
    const src = new Uint8Array([1, 2, 3]);
    const ping = new Uint8Array(8).fill(4);
    enc.data(1, src);
    enc.ping(ping);
    src.fill(0);
    ping.fill(0);
    expect(enc.pending()).toEqual(oracleEncode([{ t: "data", id: 1, bytes: Uint8Array.of(1, 2, 3) }, { t: "ping", opaque: new Uint8Array(8).fill(4) }]));
  });
});

describe("FrameEncoder refuses our own misuse with ERR_INTERNAL and appends nothing", () => {
  const good: OpenPayload = { service: "web", visitorAddress: "203.0.113.7", visitorPort: 1, routeAddress: "0.0.0.0", routePort: 2 };
  const cases: [string, (e: FrameEncoder) => void][] = [
    ["DATA id 0", (e) => e.data(0, new Uint8Array(1))],
    ["DATA id 2^31", (e) => e.data(MAX_STREAM_ID + 1, new Uint8Array(1))],
    ["DATA id 1.5", (e) => e.data(1.5, new Uint8Array(1))],
    ["DATA offset past end", (e) => e.data(1, new Uint8Array(4), 5, 0)],
    ["DATA length past end", (e) => e.data(1, new Uint8Array(4), 1, 4)],
    ["DATA negative offset", (e) => e.data(1, new Uint8Array(4), -1, 1)],
    ["DATA over MAX_MAX_FRAME_BYTES", (e) => e.data(1, new Uint8Array(MAX_MAX_FRAME_BYTES + 1))],
    ["OPEN empty service", (e) => e.open(1, { ...good, service: "" })],
    ["OPEN service 256 chars", (e) => e.open(1, { ...good, service: "a".repeat(256) })],
    ["OPEN service with space", (e) => e.open(1, { ...good, service: "a b" })],
    ["OPEN non-ASCII address", (e) => e.open(1, { ...good, visitorAddress: "é" })],
    ["OPEN address 46 chars", (e) => e.open(1, { ...good, routeAddress: "1".repeat(46) })],
    ["OPEN port 65536", (e) => e.open(1, { ...good, visitorPort: 65536 })],
    ["OPEN port -1", (e) => e.open(1, { ...good, routePort: -1 })],
    ["OPEN id 0", (e) => e.open(0, good)],
    ["ACK id 0", (e) => e.ack(0)],
    ["FIN id -1", (e) => e.fin(-1)],
    ["RST code -1", (e) => e.rst(1, -1)],
    ["RST code 2^32", (e) => e.rst(1, 2 ** 32)],
    ["WINDOW 0", (e) => e.window(1, 0)],
    ["WINDOW 2^31", (e) => e.window(1, 2 ** 31)],
    ["PING 7 bytes", (e) => e.ping(new Uint8Array(7))],
    ["PONG 9 bytes", (e) => e.pong(new Uint8Array(9))],
    ["GOAWAY last -1", (e) => e.goAway(-1, 0)],
    ["GOAWAY last 2^31", (e) => e.goAway(2 ** 31, 0)],
    ["GOAWAY code 2^32", (e) => e.goAway(0, 2 ** 32)],
    ["CONTROL 1 byte", (e) => e.control(new Uint8Array(1))],
    ["CONTROL 16385 bytes", (e) => e.control(new Uint8Array(16385))],
    ["consume more than pending", (e) => e.consume(e.pendingBytes + 1)],
    ["consume -1", (e) => e.consume(-1)],
    ["consume 0.5", (e) => e.consume(0.5)],
  ];
  test.each(cases)("%s", (_name, misuse) => {
    const enc = new FrameEncoder(32);
    enc.ack(1);
    let thrown: unknown;
    try {
      misuse(enc);
    } catch (e) {
      thrown = e;
    }
    expect(isTunnelError(thrown, "ERR_INTERNAL")).toBe(true);
    expect(enc.pending()).toEqual(oracleEncode([{ t: "ack", id: 1 }]));
  });

  test.each([0, 9, 1.5])("initial capacity %p is refused", (cap) => {
    expect(() => new FrameEncoder(cap)).toThrow(TunnelError);
  });
});
