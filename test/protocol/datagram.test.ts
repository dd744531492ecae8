/** Datagram records on a flow (SPEC.md §2.5): SPEC's example, any split, every size, and a length over the limit. */
import { describe, expect, test } from "bun:test";
import { DatagramReader, datagramRecord } from "../../src/protocol/datagram.ts";
import { MAX_DATAGRAM_BYTES } from "../../src/protocol/constants.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { Recorder } from "../support/protocol-frames.ts";
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

describe("FrameEncoder.datagram: records of one stream share a DATA frame", () => {
  /** Records DATA frames (stream, payload length) besides Recorder's log. */
  class FrameLog extends Recorder {
    readonly frames: { id: number; bytes: number }[] = [];
    override handleData(id: number, payload: Uint8Array): void {
      this.frames.push({ id, bytes: payload.byteLength });
      super.handleData(id, payload);
    }
  }

  /** Decodes `bytes`: its DATA frames, and each stream's datagrams cut out by one DatagramReader per stream. */
  function decode(bytes: Uint8Array) {
    const rec = new FrameLog();
    expect(new FrameDecoder(rec, { maxFrameBytes: 1 << 20 }).push(bytes)).toBeNull();
    const datagrams = new Map<number, Uint8Array[]>();
    const readers = new Map<number, DatagramReader>();
    for (const e of rec.log) {
      if (e.t !== "data") continue;
      if (!readers.has(e.id)) {
        const list: Uint8Array[] = [];
        datagrams.set(e.id, list);
        readers.set(e.id, new DatagramReader((d) => list.push(d.slice())));
      }
      expect(readers.get(e.id)?.push(e.bytes)).toBeNull();
    }
    return { frames: rec.frames, datagrams };
  }

  test("a burst of one stream is one frame; another stream's record, another frame type, a write or maxPayload start a new one", () => {
    const enc = new FrameEncoder(64); // tiny: joining records must grow and compact the buffer
    const d = (n: number, v: number) => new Uint8Array(n).fill(v);
    let written = new Uint8Array(0);
    const write = (n: number) => {
      written = concat([written, enc.pending().slice(0, n)]);
      enc.consume(n);
    };
    enc.datagram(7, d(100, 1), 250);
    enc.datagram(7, d(100, 2), 250); // joins: 204 bytes
    enc.datagram(7, d(100, 3), 250); // 306 > 250: a new frame
    enc.datagram(9, d(5, 4), 250); // another stream
    enc.datagram(7, d(5, 5), 250); // the last frame is stream 9's
    enc.window(7, 1);
    enc.datagram(7, d(5, 6), 250); // after a WINDOW frame
    write(3); // a short write took part of the staged bytes
    enc.datagram(7, d(0, 0), 250); // a new frame (an empty datagram)
    enc.datagram(7, d(1, 7), 250); // joins it
    write(enc.pendingBytes);
    const { frames, datagrams } = decode(written);
    expect(frames).toEqual([
      { id: 7, bytes: 204 }, { id: 7, bytes: 102 }, { id: 9, bytes: 7 }, { id: 7, bytes: 7 }, { id: 7, bytes: 7 }, { id: 7, bytes: 5 },
    ]);
    expect(datagrams.get(7)).toEqual([d(100, 1), d(100, 2), d(100, 3), d(5, 5), d(5, 6), d(0, 0), d(1, 7)]);
    expect(datagrams.get(9)).toEqual([d(5, 4)]);
  });

  test("seeded: 3,000 records of three streams between random short writes come out whole, in order, frames ≤ maxPayload", () => {
    const rng = new Prng(4242);
    const enc = new FrameEncoder(64);
    const sent = new Map<number, Uint8Array[]>();
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 3_000; i++) {
      const id = 1 + rng.int(3);
      const payload = new Uint8Array(rng.int(rng.int(10) === 0 ? 8_000 : 300));
      for (let k = 0; k < payload.length; k++) payload[k] = rng.int(256);
      enc.datagram(id, payload, 8_192);
      sent.set(id, [...(sent.get(id) ?? []), payload]);
      if (rng.int(8) === 0) {
        const n = rng.int(enc.pendingBytes + 1);
        parts.push(enc.pending().slice(0, n));
        enc.consume(n);
      }
    }
    parts.push(enc.pending().slice());
    const { frames, datagrams } = decode(concat(parts));
    expect(frames.length).toBeLessThan(3_000); // records did share frames
    expect(frames.every((f) => f.bytes <= 8_192)).toBe(true);
    for (const [id, list] of sent) expect(datagrams.get(id)).toEqual(list);
  });
});

describe("DatagramReader memory", () => {
  test("a length prefix alone allocates 4 KiB, not the record; the buffer grows with the bytes and the datagram comes out whole", () => {
    const rng = new Prng(65_000);
    const payload = new Uint8Array(65_000);
    for (let i = 0; i < payload.length; i++) payload[i] = rng.int(256);
    const record = datagramRecord(payload);
    const got: Uint8Array[] = [];
    const reader = new DatagramReader((d) => got.push(d.slice()));
    expect(reader.push(record.subarray(0, 2))).toBeNull(); // a hostile peer announces 65,000 bytes and stops
    expect(reader.allocatedBytes).toBe(4096);
    expect(reader.push(record.subarray(2, 10_002))).toBeNull();
    expect(reader.allocatedBytes).toBeLessThanOrEqual(2 * 10_000);
    for (let at = 10_002; at < record.length; at += 7_001) expect(reader.push(record.subarray(at, Math.min(record.length, at + 7_001)))).toBeNull();
    expect(got).toEqual([payload]);
    expect(reader.allocatedBytes).toBe(0);
  });
});
