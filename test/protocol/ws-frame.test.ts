/** The WebSocket codec (src/protocol/ws-frame.ts): round trips split at every boundary, masking, and every refusal. */
import { describe, expect, test } from "bun:test";
import { WsClose, WsDecoder, WsOp, closePayload, encodeFrame, maskInPlace, wsMaxMessageBytes, type WsSink } from "../../src/protocol/ws-frame.ts";
/** Seeded bytes (an LCG): reproducible, not all equal. */
function patternBytes(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) out[i] = (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) >>> 24;
  return out;
}

interface Got { binary: number[]; control: [number, number[]][]; violation: [number, string] | null }

function sink(): WsSink & { got: Got } {
  const got: Got = { binary: [], control: [], violation: null };
  return {
    got,
    onBinary: (b) => void got.binary.push(...b),
    onControl: (op, p) => void got.control.push([op, [...p]]),
    onViolation: (code, reason) => void (got.violation = [code, reason]),
  };
}

const bytesOf = (f: ReturnType<typeof encodeFrame>) => Uint8Array.from(f.buf.subarray(f.offset, f.offset + f.length));
const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

describe("ws-frame", () => {
  test("header lengths: 7-bit, 16-bit and 64-bit forms, masked and not", () => {
    for (const [n, header] of [[125, 2], [126, 4], [65535, 4], [65536, 10]] as const) {
      expect(encodeFrame(WsOp.BINARY, new Uint8Array(n), null).length).toBe(header + n);
      expect(encodeFrame(WsOp.BINARY, new Uint8Array(n), KEY).length).toBe(header + 4 + n);
    }
    // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
    const hello = bytesOf(encodeFrame(WsOp.TEXT, new TextEncoder().encode("Hello"), KEY));
    expect(Buffer.from(hello).toString("hex")).toBe("818537fa213d7f9f4d5158");
  });

  test("masking is its own inverse at any alignment and position", () => {
    const data = patternBytes(11, 1000);
    for (let off = 0; off < 5; off++) {
      for (const pos of [0, 1, 2, 3, 7]) {
        const buf = new Uint8Array(1010);
        buf.set(data, off);
        const view = buf.subarray(off, off + 1000);
        maskInPlace(view, KEY, pos);
        for (let i = 0; i < 1000; i++) expect(view[i]).toBe((data[i] as number) ^ (KEY[(pos + i) & 3] as number));
        maskInPlace(view, KEY, pos);
        expect(Buffer.from(view).equals(Buffer.from(data))).toBe(true);
      }
    }
  });

  test("masked frames decode byte-exact however the stream is split (every split point of a 3-frame stream)", () => {
    const payload = patternBytes(5, 300);
    const stream = Buffer.concat([
      bytesOf(encodeFrame(WsOp.BINARY, payload.subarray(0, 200), KEY)),
      bytesOf(encodeFrame(WsOp.PING, new Uint8Array([1, 2, 3]), KEY)),
      bytesOf(encodeFrame(WsOp.BINARY, payload.subarray(200), KEY)),
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const s = sink();
      const d = new WsDecoder({ expectMasked: true, maxMessageBytes: 1024 });
      d.push(new Uint8Array(stream.subarray(0, cut)), s);
      d.push(new Uint8Array(stream.subarray(cut)), s);
      expect(s.got.violation).toBeNull();
      expect(Buffer.from(s.got.binary).equals(Buffer.from(payload))).toBe(true);
      expect(s.got.control).toEqual([[WsOp.PING, [1, 2, 3]]]);
    }
  });

  test("a fragmented binary message is accepted up to the limit, counted over its frames", () => {
    const first = bytesOf(encodeFrame(WsOp.BINARY, new Uint8Array(600), null));
    first[0] = WsOp.BINARY; // FIN off
    const cont = bytesOf(encodeFrame(WsOp.CONTINUATION, new Uint8Array(600), null));
    const s = sink();
    new WsDecoder({ expectMasked: false, maxMessageBytes: 1000 }).push(Buffer.concat([first, cont]), s);
    expect(s.got.binary.length).toBe(600);
    expect(s.got.violation?.[0]).toBe(WsClose.MESSAGE_TOO_BIG);
  });

  const refusals: [string, Uint8Array<ArrayBuffer>, boolean, number][] = [
    ["a text message", bytesOf(encodeFrame(WsOp.TEXT, new Uint8Array(3), KEY)), true, WsClose.UNSUPPORTED_DATA],
    ["an unmasked client frame", bytesOf(encodeFrame(WsOp.BINARY, new Uint8Array(3), null)), true, WsClose.PROTOCOL_ERROR],
    ["a masked server frame", bytesOf(encodeFrame(WsOp.BINARY, new Uint8Array(3), KEY)), false, WsClose.PROTOCOL_ERROR],
    ["reserved bits", bytesOf(encodeFrame(WsOp.BINARY, new Uint8Array(3), null)).map((b, i) => (i === 0 ? b | 0x40 : b)), false, WsClose.PROTOCOL_ERROR],
    ["an unknown opcode", Uint8Array.from([0x83, 0x00]), false, WsClose.PROTOCOL_ERROR],
    ["an unknown control opcode", Uint8Array.from([0x8b, 0x00]), false, WsClose.PROTOCOL_ERROR],
    ["a continuation without a message", Uint8Array.from([0x80, 0x00]), false, WsClose.PROTOCOL_ERROR],
    ["a control frame over 125 bytes", Uint8Array.from([0x89, 126, 0, 126]), false, WsClose.PROTOCOL_ERROR],
    ["a fragmented control frame", Uint8Array.from([0x09, 0x00]), false, WsClose.PROTOCOL_ERROR],
    ["a message over the limit (64-bit length)", Uint8Array.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]), false, WsClose.MESSAGE_TOO_BIG],
  ];
  for (const [name, bytes, masked, code] of refusals) {
    test(`refused: ${name} (close ${code}), nothing decoded after it`, () => {
      const s = sink();
      const d = new WsDecoder({ expectMasked: masked, maxMessageBytes: 1024 });
      d.push(Buffer.concat([bytes, bytesOf(encodeFrame(WsOp.BINARY, new Uint8Array(5), masked ? KEY : null))]), s);
      expect(s.got.violation?.[0]).toBe(code);
      expect(s.got.binary).toEqual([]);
    });
  }

  test("close payloads carry the code and a reason cut to fit a control frame; the message limit follows the frame limit", () => {
    const p = closePayload(1009, "x".repeat(300));
    expect(p.byteLength).toBe(125);
    expect((p[0] as number) * 256 + (p[1] as number)).toBe(1009);
    expect(wsMaxMessageBytes(16384)).toBe(256 * 1024);
    expect(wsMaxMessageBytes(1024 * 1024)).toBe(1024 * 1024 + 9);
  });
});
