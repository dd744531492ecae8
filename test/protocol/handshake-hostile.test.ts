/** Hostile handshake frames: each check of SPEC.md §1.5 at the exact byte, bad bodies, and a 100,000-input fuzz. */
import { describe, expect, test } from "bun:test";
import { HANDSHAKE_HEADER_BYTES, HANDSHAKE_MAX_BODY_LIMIT } from "../../src/protocol/constants.ts";
import { HandshakeDecoder, encodeHandshake } from "../../src/protocol/handshake.ts";
import { feedHandshake, outcome, rawHandshake } from "../support/protocol-handshake.ts";
import { Prng, concat, splitAt } from "../support/protocol-prng.ts";

const INFO = '{"cluster_name":"c","weight":10,"host_name":"","credential_policy":"","credential":"","extra":null}';

/** Pushes the first `n` bytes one at a time; asserts "more" before byte n and returns the outcome at byte n. */
function outcomeAt(bytes: Uint8Array, n: number, dec = new HandshakeDecoder()): string {
  for (let i = 0; i < n - 1; i++) {
    const r = dec.push(bytes.subarray(i, i + 1));
    if (r.kind !== "more") throw new Error(`final after ${i + 1} bytes: ${outcome(r)}`);
  }
  return outcome(dec.push(bytes.subarray(n - 1, n)));
}

describe("handshake header: each field is checked as soon as its bytes are in", () => {
  test("bad magic is rejected by a 2-byte push; one correct byte is 'more'", () => {
    expect(outcome(new HandshakeDecoder().push(Uint8Array.of(0x16, 0x03)))).toBe("ERR_HANDSHAKE_MAGIC"); // a TLS ClientHello
    expect(outcome(new HandshakeDecoder().push(Uint8Array.of(0x20, 0x89)))).toBe("ERR_HANDSHAKE_MAGIC");
    expect(outcome(new HandshakeDecoder().push(Uint8Array.of(0x47, 0x45)))).toBe("ERR_HANDSHAKE_MAGIC"); // "GE" of GET
    expect(outcome(new HandshakeDecoder().push(Uint8Array.of(0x20)))).toBe("more");
    expect(outcomeAt(rawHandshake(1, INFO, { magic: [0xda, 0xbb] }), 2)).toBe("ERR_HANDSHAKE_MAGIC");
  });

  test.each([0, 2, 255])("version %p rejected after 3 bytes", (version) => {
    expect(outcomeAt(rawHandshake(1, INFO, { version }), 3)).toBe("ERR_HANDSHAKE_VERSION");
  });

  test.each([0, 4, 255])("unknown flag %p rejected after 4 bytes", (flag) => {
    expect(outcomeAt(rawHandshake(flag, INFO), 4)).toBe("ERR_HANDSHAKE_FLAG");
  });

  test("a flag outside `accept` is rejected after 4 bytes", () => {
    const server = () => new HandshakeDecoder({ accept: [1, 3] });
    expect(outcomeAt(rawHandshake(2, '{"status":1}'), 4, server())).toBe("ERR_HANDSHAKE_FLAG");
    const agent = () => new HandshakeDecoder({ accept: [2] });
    expect(outcomeAt(rawHandshake(1, INFO), 4, agent())).toBe("ERR_HANDSHAKE_FLAG");
    expect(outcomeAt(rawHandshake(2, '{"status":1}'), 20, agent())).toBe("frame");
  });

  test.each([
    [1, [2, 0]],
    [2, [1, 0]],
    [3, [2, 0]],
    [1, [1, 1]],
    [1, [0, 1]],
  ] as const)("flag %p with type bytes %p rejected after 6 bytes", (flag, type) => {
    expect(outcomeAt(rawHandshake(flag, INFO, { type: [...type] }), 6)).toBe("ERR_HANDSHAKE_TYPE");
  });

  test("a length over the limit is rejected after the 8-byte header, without waiting for the body", () => {
    const header = rawHandshake(1, "", { length: 16385 });
    expect(outcome(new HandshakeDecoder().push(header))).toBe("ERR_HANDSHAKE_TOO_LARGE");
    expect(outcome(new HandshakeDecoder().push(rawHandshake(1, "", { length: 16384 })))).toBe("more");
    expect(outcome(new HandshakeDecoder({ maxBodyBytes: 100 }).push(rawHandshake(1, "", { length: 101 })))).toBe("ERR_HANDSHAKE_TOO_LARGE");
    expect(outcome(new HandshakeDecoder({ maxBodyBytes: 1 << 20 }).push(rawHandshake(1, "", { length: 65535 })))).toBe("more");
  });

  test("the first bad field wins", () => {
    expect(outcomeAt(rawHandshake(9, INFO, { magic: [0, 0], version: 9, type: [9, 9], length: 65535 }), 2)).toBe("ERR_HANDSHAKE_MAGIC");
    expect(outcomeAt(rawHandshake(9, INFO, { version: 9, type: [9, 9], length: 65535 }), 3)).toBe("ERR_HANDSHAKE_VERSION");
    expect(outcomeAt(rawHandshake(9, INFO, { type: [9, 9], length: 65535 }), 4)).toBe("ERR_HANDSHAKE_FLAG");
    expect(outcomeAt(rawHandshake(1, INFO, { type: [9, 9], length: 65535 }), 6)).toBe("ERR_HANDSHAKE_TYPE");
  });
});

describe("handshake body", () => {
  test("a truncated frame is 'more', buffering only what arrived", () => {
    const frame = rawHandshake(1, INFO);
    const dec = new HandshakeDecoder();
    expect(dec.push(frame.subarray(0, 5)).kind).toBe("more");
    expect(dec.bufferedBytes).toBe(5);
    expect(dec.push(frame.subarray(5, frame.length - 1)).kind).toBe("more");
    expect(dec.bufferedBytes).toBe(frame.length - 1);
    expect(dec.push(frame.subarray(frame.length - 1)).kind).toBe("frame");
  });

  test.each([
    ["empty body", ""],
    ["truncated object", "{"],
    ["not JSON", "nope"],
    ["trailing garbage", '{"status":1}x'],
    ["single quotes", "{'status':1}"],
    ["BOM before the object (Go rejects it too)", "\ufeff{\"status\":1}"],
    ["NaN", '{"status":NaN}'],
  ])("%s → ERR_HANDSHAKE_JSON", (_n, body) => {
    expect(outcome(new HandshakeDecoder().push(rawHandshake(2, body)))).toBe("ERR_HANDSHAKE_JSON");
  });

  const prefix = new TextEncoder().encode('{"status":1,"connection_id":"');
  const suffix = new TextEncoder().encode('"}');
  test.each([
    ["lone 0xFF", [0xff]],
    ["lone continuation byte", [0x80]],
    ["overlong '/'", [0xc0, 0xaf]],
    ["UTF-16 surrogate", [0xed, 0xa0, 0x80]],
    ["truncated 3-byte sequence", [0xe2, 0x82]],
    ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ])("invalid UTF-8 (%s) → ERR_HANDSHAKE_JSON", (_n, bad) => {
    const body = concat([prefix, Uint8Array.from(bad), suffix]);
    expect(outcome(new HandshakeDecoder().push(rawHandshake(2, body)))).toBe("ERR_HANDSHAKE_JSON");
  });

  test.each([
    [1, "[]"],
    [1, "null"],
    [1, "42"],
    [1, '"text"'],
    [1, "{}"],
    [1, INFO.replace('"weight":10', '"weight":"10"')],
    [1, INFO.replace('"weight":10', '"weight":1.5')],
    [1, INFO.replace('"weight":10', '"weight":101')],
    [1, INFO.replace('"weight":10', '"weight":-1')],
    [1, INFO.replace('"cluster_name":"c"', '"cluster_name":""')],
    [1, INFO.replace('"cluster_name":"c"', `"cluster_name":"${"c".repeat(129)}"`)],
    [1, INFO.replace('"credential":""', `"credential":"${"k".repeat(4097)}"`)],
    [1, INFO.replace('"credential_policy":""', '"credential_policy":null')],
    [1, INFO.replace('"extra":null', '"extra":[1]')],
    [1, INFO.replace('"extra":null', '"extra":"x"')],
    [2, '{"status":"1"}'],
    [2, '{"status":256}'],
    [2, '{"status":1,"connection_id":null}'],
    [2, '{"status":1,"backchannel":{"version":1,"window":0,"max_frame":262144}}'],
    [2, '{"status":1,"retry_after_ms":-5}'],
    [3, '{"addresses":[1],"cluster_name":"c"}'],
    [3, '{"addresses":"a","cluster_name":"c"}'],
    [3, '{"cluster_name":"c"}'],
  ])("flag %p body %s → ERR_HANDSHAKE_SHAPE", (flag, body) => {
    expect(outcome(new HandshakeDecoder().push(rawHandshake(flag, body)))).toBe("ERR_HANDSHAKE_SHAPE");
  });

  test("nesting: depth 8 passes, depth 9 is ERR_HANDSHAKE_SHAPE; 30,000 levels are handled", () => {
    const nest = (levels: number) => "[".repeat(levels) + "]".repeat(levels);
    const withExtra = (levels: number) => INFO.replace('"extra":null', `"extra":{"x":${nest(levels)}}`);
    expect(outcome(new HandshakeDecoder().push(rawHandshake(1, withExtra(6))))).toBe("frame"); // 1 + 1 + 6 = 8
    expect(outcome(new HandshakeDecoder().push(rawHandshake(1, withExtra(7))))).toBe("ERR_HANDSHAKE_SHAPE");
    const deep = new HandshakeDecoder({ maxBodyBytes: HANDSHAKE_MAX_BODY_LIMIT });
    expect(outcome(deep.push(rawHandshake(1, withExtra(30000))))).toBe("ERR_HANDSHAKE_SHAPE");
    expect(outcome(new HandshakeDecoder().push(rawHandshake(2, `{"status":1,"connection_id":"${"[".repeat(100)}"}`)))).toBe("frame");
  });

  test("after an error every push returns the same result", () => {
    const dec = new HandshakeDecoder();
    const first = dec.push(Uint8Array.of(1, 2));
    expect(dec.push(encodeHandshake({ flag: 2, body: { status: 1 } }))).toBe(first);
    expect(dec.bufferedBytes).toBe(0);
  });
});

describe("handshake decoder fuzz", () => {
  const FINAL = new Set(["more", "frame", "ERR_HANDSHAKE_MAGIC", "ERR_HANDSHAKE_VERSION", "ERR_HANDSHAKE_FLAG", "ERR_HANDSHAKE_TYPE", "ERR_HANDSHAKE_TOO_LARGE", "ERR_HANDSHAKE_JSON", "ERR_HANDSHAKE_SHAPE"]);
  const tokens = ['{', '}', '[', ']', ',', ':', '"cluster_name"', '"weight"', '"status"', '"extra"', '"addresses"', '"x"', "1", "10", "-1", "1e400", "null", "true", '"\\u0000"', '"\\ud800"', " "];
  const valid = [
    encodeHandshake({ flag: 1, body: { cluster_name: "c", weight: 10, host_name: "", credential_policy: "", credential: "", extra: null } }),
    encodeHandshake({ flag: 2, body: { status: 1, connection_id: "x", backchannel: { version: 1, window: 65536, max_frame: 16384 } } }),
    encodeHandshake({ flag: 3, body: { addresses: ["1.2.3.4:5"], cluster_name: "c" } }),
  ];

  function hostile(rng: Prng): Uint8Array {
    switch (rng.int(5)) {
      case 0:
        return rng.bytes(rng.int(40));
      case 1: { // a good header, a random body
        const body = rng.bytes(rng.int(40));
        return rawHandshake(rng.range(1, 3), body, rng.int(4) ? {} : { length: rng.int(65536) });
      }
      case 2: { // a good header, token soup
        let s = "";
        for (let i = rng.int(30); i > 0; i--) s += rng.pick(tokens);
        return rawHandshake(rng.range(1, 3), s);
      }
      default: { // a valid frame, mutated and/or truncated
        const b = rng.pick(valid).slice();
        for (let k = rng.int(3); k > 0; k--) b[rng.int(b.length)] = rng.int(256);
        return rng.int(3) === 0 ? b.subarray(0, rng.int(b.length + 1)) : b;
      }
    }
  }

  test("100,000 hostile inputs: never throws, documented outcomes only, split-invariant, bounded buffering", () => {
    const rng = new Prng(0xbad5eed);
    const counts = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const input = hostile(rng);
      const maxBodyBytes = rng.pick([64, 16384]);
      const whole = feedHandshake([input], new HandshakeDecoder({ maxBodyBytes }));
      const split = feedHandshake(splitAt(input, rng, rng.int(5)), new HandshakeDecoder({ maxBodyBytes }));
      const o = outcome(whole.result);
      const same = whole.result.kind !== "frame" || Bun.deepEquals(whole.result, split.result);
      if (!FINAL.has(o) || outcome(split.result) !== o || !same || Math.max(whole.maxBuffered, split.maxBuffered) > HANDSHAKE_HEADER_BYTES + maxBodyBytes) {
        throw new Error(`input ${i} (${Buffer.from(input).toString("hex")}): whole ${o}, split ${outcome(split.result)}`);
      }
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const o of FINAL) expect(counts.get(o) ?? 0).toBeGreaterThan(50);
  });
});
