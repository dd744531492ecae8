/** Datagram records on a flow (SPEC.md §2.5): SPEC's example, any split, every size, and a length over the limit. */
import { describe, expect, test } from "bun:test";
import { DatagramReader, datagramRecord } from "../../src/protocol/datagram.ts";
import { MAX_DATAGRAM_BYTES } from "../../src/protocol/constants.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { isTunnelError } from "../../src/errors.ts";
import { concat, Prng, splitAt, splitBytewise } from "../support/protocol-prng.ts";
import { specVectors } from "../support/protocol-spec.ts";

function readAll(parts: readonly Uint8Array[]): { datagrams: Uint8Array[]; error: string | null; reader: DatagramReader } {
  const datagrams: Uint8Array[] = [];
  const reader = new DatagramReader((d) => datagrams.push(d.slice()));
  let error: string | null = null;
  for (const p of parts) {
    const e = reader.push(p);
    if (e !== null) {
      error = e.code;
      break;
    }
  }
  return { datagrams, error, reader };
}

const text = (d: Uint8Array) => new TextDecoder().decode(d);

describe("DatagramReader", () => {
  test("SPEC.md frame-data-datagrams: hi, an empty datagram, abc; whole, byte by byte and at random cuts", () => {
    const v = specVectors().find((x) => x.name === "frame-data-datagrams");
    const payload = (v as { bytes: Uint8Array }).bytes.subarray(10);
    const rng = new Prng(20);
    for (const parts of [[payload], splitBytewise(payload), splitAt(payload, rng, 3), splitAt(payload, rng, 5)]) {
      const r = readAll(parts);
      expect(r.error).toBeNull();
      expect(r.datagrams.map(text)).toEqual(["hi", "", "abc"]);
      expect(r.reader.bufferedBytes).toBe(0);
    }
  });

  test("seeded: 300 datagrams of random sizes 0..65,507 come out whole and byte-exact, however the bytes are cut", () => {
    const rng = new Prng(7);
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 300; i++) {
      const n = i === 0 ? MAX_DATAGRAM_BYTES : rng.int(MAX_DATAGRAM_BYTES + 1);
      const d = new Uint8Array(n);
      for (let j = 0; j < n; j += 97) d[j] = rng.int(256);
      sent.push(d);
    }
    const stream = concat(sent.map(datagramRecord));
    const r = readAll(splitAt(stream, rng, 500));
    expect(r.error).toBeNull();
    expect(r.datagrams.length).toBe(sent.length);
    for (let i = 0; i < sent.length; i++) expect(Buffer.compare(r.datagrams[i] as Uint8Array, sent[i] as Uint8Array)).toBe(0);
  });

  test("a length over 65,507 is ERR_FRAME_PAYLOAD, whole or with the prefix split; nothing after it is delivered", () => {
    const bad = new Uint8Array([0x00, 0x01, 0x41, 0xff, 0xe4, 0x00, 0x00]); // "A", then a length of 65,508
    for (const parts of [[bad], splitBytewise(bad)]) {
      const r = readAll(parts);
      expect(r.error).toBe("ERR_FRAME_PAYLOAD");
      expect(r.datagrams.map(text)).toEqual(["A"]);
      expect(r.reader.push(new Uint8Array([0, 0]))?.code).toBe("ERR_FRAME_PAYLOAD");
    }
  });

  test("datagramRecord refuses a datagram over the limit (our bug: callers drop those first)", () => {
    expect(datagramRecord(new Uint8Array(MAX_DATAGRAM_BYTES)).byteLength).toBe(MAX_DATAGRAM_BYTES + 2);
    let err: unknown;
    try {
      datagramRecord(new Uint8Array(MAX_DATAGRAM_BYTES + 1));
    } catch (e) {
      err = e;
    }
    expect(isTunnelError(err, "ERR_INTERNAL")).toBe(true);
  });
});

describe("FrameEncoder.datagram", () => {
  test("writes exactly the DATA frame of datagramRecord(payload), for sizes 0..65,507", () => {
    const rng = new Prng(2020);
    for (const n of [0, 1, 2, 255, 256, 1400, 65_535 - 28, ...Array.from({ length: 40 }, () => rng.int(MAX_DATAGRAM_BYTES + 1))]) {
      const payload = new Uint8Array(n);
      for (let i = 0; i < n; i++) payload[i] = rng.int(256);
      const direct = new FrameEncoder();
      direct.datagram(7, payload);
      const viaRecord = new FrameEncoder();
      viaRecord.data(7, datagramRecord(payload));
      expect(direct.pending()).toEqual(viaRecord.pending());
    }
  });

  test("a payload over 65,507 bytes or a bad stream id is a misuse (ERR_INTERNAL), nothing staged", () => {
    const enc = new FrameEncoder();
    for (const call of [() => enc.datagram(1, new Uint8Array(MAX_DATAGRAM_BYTES + 1)), () => enc.datagram(0, new Uint8Array(1))]) {
      let code: string | null = null;
      try {
        call();
      } catch (e) {
        code = isTunnelError(e) ? e.code : "other";
      }
      expect(code).toBe("ERR_INTERNAL");
    }
    expect(enc.pendingBytes).toBe(0);
  });
});
