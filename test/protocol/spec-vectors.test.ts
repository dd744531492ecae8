/** SPEC.md and the code cannot drift: its hex examples decode and re-encode byte-exact, its tables match the constants. */
import { describe, expect, test } from "bun:test";
import { ErrorCodes } from "../../src/errors.ts";
import { FrameType, HandshakeFlag, HandshakeStatus, WireCode } from "../../src/protocol/constants.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { decodeControl } from "../../src/protocol/control.ts";
import { HandshakeDecoder, encodeHandshake } from "../../src/protocol/handshake.ts";
import { Recorder } from "../support/protocol-frames.ts";
import { specTable, specVectors } from "../support/protocol-spec.ts";

const vectors = specVectors();
const accepted = vectors.filter((v) => v.rejectCode === null);
const rejected = vectors.filter((v) => v.rejectCode !== null);

describe("SPEC.md hex examples", () => {
  test("there are examples for every handshake flag and every frame type", () => {
    const flags = new Set(accepted.filter((v) => v.name.startsWith("handshake-")).map((v) => v.bytes[3]));
    expect([...flags].sort()).toEqual(Object.values(HandshakeFlag));
    const types = new Set<number>();
    for (const v of accepted.filter((x) => x.name.startsWith("frame-"))) {
      for (let o = 0; o < v.bytes.length; o += 10 + new DataView(v.bytes.buffer).getUint32(o + 6)) types.add(v.bytes[o]!);
    }
    expect([...types].sort((a, b) => a - b)).toEqual(Object.values(FrameType));
    expect(vectors.every((v) => v.name.startsWith("handshake-") || v.name.startsWith("frame-"))).toBe(true);
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
  });

  test.each(accepted.filter((v) => v.name.startsWith("handshake-")).map((v) => [v.name, v] as const))("%s decodes and re-encodes byte-exact", (_n, v) => {
    const r = new HandshakeDecoder().push(v.bytes);
    if (r.kind !== "frame") throw new Error(r.kind === "error" ? r.error.code : "more");
    expect(r.rest.length).toBe(0);
    expect(encodeHandshake(r.message)).toEqual(v.bytes);
  });

  test.each(accepted.filter((v) => v.name.startsWith("frame-")).map((v) => [v.name, v] as const))("%s decodes and re-encodes byte-exact", (_n, v) => {
    const enc = new FrameEncoder(16);
    const rec = new Recorder();
    // Re-encode each frame as it is decoded (DATA parts arrive whole here: one chunk).
    const dec = new FrameDecoder({
      handleData: (id, p) => enc.data(id, p),
      handleOpen: (id, o) => enc.open(id, o),
      handleAck: (id) => enc.ack(id),
      handleFin: (id) => enc.fin(id),
      handleRst: (id, c) => enc.rst(id, c),
      handleWindow: (id, i) => enc.window(id, i),
      handlePing: (o) => enc.ping(o),
      handlePong: (o) => enc.pong(o),
      handleGoAway: (l, c) => enc.goAway(l, c),
      handleControl: (p) => enc.control(p),
    });
    expect(dec.push(v.bytes)).toBeNull();
    expect(dec.bufferedBytes).toBe(0);
    expect(enc.pending()).toEqual(v.bytes);
    expect(new FrameDecoder(rec).push(v.bytes)).toBeNull();
    for (const e of rec.log) if (e.t === "control") expect(decodeControl(e.bytes)).not.toBeNull(); // §4 messages
  });

  test.each(rejected.map((v) => [v.name, v] as const))("%s is rejected with its code at its last byte", (_n, v) => {
    const before = v.bytes.subarray(0, v.bytes.length - 1);
    const last = v.bytes.subarray(v.bytes.length - 1);
    if (v.name.startsWith("handshake-")) {
      const dec = new HandshakeDecoder();
      expect(dec.push(before).kind).toBe("more");
      const r = dec.push(last);
      expect<string>(r.kind === "error" ? r.error.code : r.kind).toBe(v.rejectCode!);
    } else {
      const dec = new FrameDecoder(new Recorder());
      expect(dec.push(before)).toBeNull();
      expect<string | undefined>(dec.push(last)?.code).toBe(v.rejectCode!);
    }
  });
});

describe("SPEC.md tables match the code", () => {
  test("§1.2 handshake statuses", () => {
    const rows = specTable("### 1.2 ConnectionInitResponse (flag 2, server → agent)").filter((r) => /^\d+$/.test(r[0]!));
    expect(Object.fromEntries(rows.map((r) => [r[1], Number(r[0])]))).toEqual({ ...HandshakeStatus });
  });

  test("§2 frame types", () => {
    const rows = specTable("## 2. Stream frames", 1);
    expect(Object.fromEntries(rows.map((r) => [r[1], parseInt(r[0]!, 16)]))).toEqual({ ...FrameType });
  });

  test("§5.1 error codes", () => {
    const rows = specTable("### 5.1 Error codes (`TunnelError.code`)").filter((r) => r[0] !== "");
    expect(Object.fromEntries(rows.map((r) => [r[0], r[1]]))).toEqual({ ...ErrorCodes });
  });

  test("§5.2 wire codes", () => {
    const rows = specTable("### 5.2 Wire codes (RST and GOAWAY)");
    expect(Object.fromEntries(rows.map((r) => [r[1], Number(r[0])]))).toEqual({ ...WireCode });
  });
});
