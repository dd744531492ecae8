/**
 * The ClientHello server-name decoder (src/protocol/client-hello.ts): ClientHellos captured from curl, openssl and
 * Chromium, whole, byte by byte, at seeded random boundaries and re-framed into many records; every prefix;
 * hostile variants, each with its outcome; and 100,000 seeded mutations that must never throw and must decode the
 * same however they are split.
 */
import { describe, expect, test } from "bun:test";
import { ClientHelloDecoder, fatalAlert, SNIFF_MAX_BYTES, TlsAlert, type HelloError, type HelloResult } from "../../src/protocol/client-hello.ts";
import { Prng } from "../support/protocol-prng.ts";
import { ext, FIXTURES, fixture, helloMessage, messageOf, records, serverNameExt } from "../support/tls-hello.ts";

/** Feeds `bytes` in pieces ending at `cuts` (sorted offsets); returns the last result. */
function decodeSplit(bytes: Uint8Array, cuts: number[]): HelloResult {
  const d = new ClientHelloDecoder();
  let from = 0;
  let r: HelloResult = d.push(new Uint8Array(0));
  for (const to of [...cuts, bytes.length]) {
    if (to <= from) continue;
    r = d.push(bytes.slice(from, to));
    from = to;
  }
  return r;
}

const decode = (bytes: Uint8Array) => new ClientHelloDecoder().push(bytes);
const named = (serverName: string | null): HelloResult => ({ status: "hello", serverName });
const error = (e: HelloError): HelloResult => ({ status: "error", error: e });

function randomCuts(rng: Prng, n: number, count: number): number[] {
  return Array.from({ length: count }, () => rng.int(n + 1)).sort((a, b) => a - b);
}

describe("captured ClientHellos", () => {
  for (const f of FIXTURES) {
    test(`${f.file} (${f.client}): ${f.serverName ?? "no server name"}, whole, byte by byte and at random cuts`, () => {
      const bytes = fixture(f.file);
      expect(bytes[0]).toBe(0x16);
      expect(decode(bytes)).toEqual(named(f.serverName));
      expect(decodeSplit(bytes, Array.from({ length: bytes.length }, (_, i) => i))).toEqual(named(f.serverName));
      const rng = new Prng(bytes.length);
      for (let i = 0; i < 200; i++) expect(decodeSplit(bytes, randomCuts(rng, bytes.length, rng.range(1, 12)))).toEqual(named(f.serverName));
    });

    test(`${f.file}: every proper prefix asks for more`, () => {
      const bytes = fixture(f.file);
      for (let n = 0; n < bytes.length; n++) expect(decode(bytes.subarray(0, n)).status).toBe("more");
    });

    test(`${f.file}: re-framed into records of 1, 7 and 100 bytes, also split: same name`, () => {
      const message = messageOf(fixture(f.file));
      const rng = new Prng(7);
      for (const size of [1, 7, 100]) {
        const framed = records(message, [size]);
        if (framed.length > SNIFF_MAX_BYTES) {
          expect(decode(framed)).toEqual(error("oversized")); // 1-byte records: 6× the bytes
          continue;
        }
        expect(decode(framed)).toEqual(named(f.serverName));
        expect(decodeSplit(framed, randomCuts(rng, framed.length, 20))).toEqual(named(f.serverName));
      }
    });
  }

  test("Chromium's ClientHello carries GREASE and an ECH extension (0xfe0d); the outer name is what routing sees", () => {
    const m = messageOf(fixture("chromium.bin"));
    const hex = Buffer.from(m).toString("hex");
    expect(hex).toContain("fe0d");
    expect(decode(fixture("chromium.bin"))).toEqual(named("app.example.com"));
  });
});

describe("synthetic and hostile ClientHellos", () => {
  const hello = (exts: Uint8Array[] | null, opts?: { sessionId?: number }) => records(helloMessage(exts, opts));

  test.each<[string, Uint8Array, HelloResult]>([
    ["upper-case name is lower-cased", hello([serverNameExt([[0, "App.Example.COM"]])]), named("app.example.com")],
    ["no extensions block (TLS 1.0 style)", hello(null), named(null)],
    ["empty extensions block", hello([]), named(null)],
    ["other name types are skipped", hello([serverNameExt([[1, "x"], [0, "a.example"]])]), named("a.example")],
    ["only another name type", hello([serverNameExt([[1, "x"]])]), named(null)],
    ["session id 0", hello([serverNameExt([[0, "a.example"]])], { sessionId: 0 }), named("a.example")],
    ["underscore label", hello([serverNameExt([[0, "_svc.example"]])]), named("_svc.example")],
    ["plain HTTP", new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), error("not_tls")],
    ["alert record first", Uint8Array.of(0x15, 3, 3, 0, 2, 2, 0x70), error("not_tls")],
    ["SSLv2-style first byte", Uint8Array.of(0x80, 0x2e, 0x01), error("not_tls")],
    ["record version 2.x", Uint8Array.of(0x16, 2, 0, 0, 4), error("not_tls")],
    ["zero-length record", Uint8Array.of(0x16, 3, 1, 0, 0), error("malformed")],
    ["record over 2^14", Uint8Array.of(0x16, 3, 1, 0x40, 0x01), error("malformed")],
    ["not a ClientHello (ServerHello)", Uint8Array.of(0x16, 3, 3, 0, 4, 2, 0, 0, 0), error("malformed")],
    ["handshake length past the bound", Uint8Array.of(0x16, 3, 1, 0, 4, 1, 0, 0x40, 0), error("oversized")],
    ["empty ClientHello body", Uint8Array.of(0x16, 3, 1, 0, 4, 1, 0, 0, 0), error("malformed")],
    ["session id of 33", hello([], { sessionId: 33 }), error("malformed")],
    ["repeated extension", hello([ext(5, []), ext(5, [])]), error("malformed")],
    ["two host names", hello([serverNameExt([[0, "a.example"], [0, "b.example"]])]), error("malformed")],
    ["empty server_name list", hello([ext(0, [0, 0])]), error("malformed")],
    ["empty server_name data", hello([ext(0, [])]), error("malformed")],
    ["list length disagrees", hello([ext(0, [0, 9, 0, 0, 1, 0x61])]), error("malformed")],
    ["empty host name", hello([serverNameExt([[0, ""]])]), error("malformed")],
    ["trailing dot", hello([serverNameExt([[0, "a.example."]])]), error("malformed")],
    ["NUL in the name", hello([serverNameExt([[0, "a\0.example"]])]), error("malformed")],
    ["space in the name", hello([serverNameExt([[0, "a b.example"]])]), error("malformed")],
    ["UTF-8 in the name", hello([serverNameExt([[0, "ä.example"]])]), error("malformed")],
    ["label over 63", hello([serverNameExt([[0, `${"a".repeat(64)}.example`]])]), error("malformed")],
    ["extension longer than the block", hello([Uint8Array.of(0, 0, 0xff, 0xff)]), error("malformed")],
  ])("%s", (_name, bytes, want) => {
    expect(decode(bytes)).toEqual(want);
    expect(decodeSplit(bytes, Array.from({ length: bytes.length }, (_, i) => i))).toEqual(want);
  });

  test("extensions block length one short or one long: malformed", () => {
    const m = helloMessage([serverNameExt([[0, "a.example"]])]);
    const at = m.length - serverNameExt([[0, "a.example"]]).length - 2;
    for (const delta of [-1, 1]) {
      const bad = m.slice();
      bad[at + 1] = (bad[at + 1] as number) + delta;
      expect(decode(records(bad))).toEqual(error("malformed"));
    }
  });

  test("a non-handshake record in the middle of a split ClientHello: malformed", () => {
    const framed = records(messageOf(fixture("curl.bin")), [100]);
    const bad = framed.slice();
    bad[105] = 0x17; // the second record's content type
    expect(decode(bad)).toEqual(error("malformed"));
  });

  test("more than 16 KiB of tiny records without completing: oversized, having read at most 16 KiB", () => {
    const big = helloMessage([ext(21, new Array<number>(6000).fill(0)), serverNameExt([[0, "a.example"]])]);
    const framed = records(big, [1]);
    const d = new ClientHelloDecoder();
    let r: HelloResult = { status: "more" };
    let fed = 0;
    while (r.status === "more" && fed < framed.length) {
      r = d.push(framed.subarray(fed, fed + 1000));
      fed += 1000;
    }
    expect(r).toEqual(error("oversized"));
    expect(fed).toBeLessThanOrEqual(SNIFF_MAX_BYTES + 1000);
  });

  test("the largest ClientHello that fits (16 KiB with its record header) decodes; one byte more is oversized", () => {
    const pad = (n: number) => helloMessage([serverNameExt([[0, "a.example"]]), ext(21, new Array<number>(n).fill(0))]);
    const fitting = SNIFF_MAX_BYTES - 5 - pad(0).length;
    expect(records(pad(fitting)).length).toBe(SNIFF_MAX_BYTES);
    expect(decode(records(pad(fitting)))).toEqual(named("a.example"));
    expect(decodeSplit(records(pad(fitting)), [3, 9, 4000])).toEqual(named("a.example"));
    expect(decode(records(pad(fitting + 1)))).toEqual(error("oversized"));
  });

  test("once decided, later pushes return the same result", () => {
    const d = new ClientHelloDecoder();
    expect(d.push(fixture("openssl.bin"))).toEqual(named("app.example.com"));
    expect(d.push(Uint8Array.of(0xff, 0xff))).toEqual(named("app.example.com"));
  });

  test("the alerts are the plaintext fatal alert records", () => {
    expect([...fatalAlert(TlsAlert.UNRECOGNIZED_NAME)]).toEqual([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
    expect([...fatalAlert(TlsAlert.DECODE_ERROR)]).toEqual([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
  });
});

/** A seeded mutation of `base`: bit flips, byte overwrites, truncation, insertion, length-field tweaks. */
function mutate(rng: Prng, base: Uint8Array): Uint8Array {
  let b = base.slice();
  const n = rng.range(1, 4);
  for (let k = 0; k < n; k++) {
    const i = rng.int(Math.max(1, b.length));
    switch (rng.int(6)) {
      case 0: b[i] = (b[i] as number) ^ (1 << rng.int(8)); break;
      case 1: b[i] = rng.int(256); break;
      case 2: b = b.slice(0, rng.int(b.length + 1)); break;
      case 3: b = Uint8Array.from([...b.subarray(0, i), ...rng.bytes(rng.range(1, 8)), ...b.subarray(i)]); break;
      case 4: b[i] = 0; break; // length fields to zero
      default: b[i] = 0xff; break; // length fields to large
    }
  }
  return b;
}

test("fuzz: 100,000 seeded mutations of the fixtures never throw and decode the same whole or split", () => {
  const rng = new Prng(0x5eed18);
  const bases = FIXTURES.map((f) => fixture(f.file));
  bases.push(records(messageOf(fixture("curl.bin")), [37]));
  const seen = new Map<string, number>();
  for (let i = 0; i < 100_000; i++) {
    const bytes = i % 50 === 0 ? rng.bytes(rng.range(0, 600)) : mutate(rng, rng.pick(bases));
    let whole: HelloResult;
    let split: HelloResult;
    try {
      whole = decode(bytes);
      split = decodeSplit(bytes, randomCuts(rng, bytes.length, rng.range(1, 6)));
    } catch (e) {
      throw new Error(`case ${i} threw: ${(e as Error).message} on ${Buffer.from(bytes).toString("hex")}`);
    }
    if (JSON.stringify(whole) !== JSON.stringify(split)) {
      throw new Error(`case ${i}: ${JSON.stringify(whole)} whole, ${JSON.stringify(split)} split: ${Buffer.from(bytes).toString("hex")}`);
    }
    const key = whole.status === "error" ? whole.error : whole.status;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  // The mutations reach every outcome, so the property above was checked on each.
  for (const k of ["hello", "more", "malformed", "not_tls", "oversized"]) expect(seen.get(k) ?? 0).toBeGreaterThan(10);
}, 60_000);
