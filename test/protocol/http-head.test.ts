/**
 * The HTTP/1.x request-head decoder (src/protocol/http-head.ts): the host a request is for, whole and split,
 * absolute-form targets, the HTTP/2 preface, hostile heads with their outcome, the bound, and seeded fuzzing.
 */
import { describe, expect, test } from "bun:test";
import { h2GoAwayHttp11Required, HEAD_MAX_BYTES, hostOfAuthority, httpErrorResponse, HttpHeadDecoder, type HeadError, type HeadResult } from "../../src/protocol/http-head.ts";
import { Prng } from "../support/protocol-prng.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new HttpHeadDecoder().push(b);
function decodeSplit(b: Uint8Array, cuts: number[]): HeadResult {
  const d = new HttpHeadDecoder();
  let from = 0;
  let r: HeadResult = { status: "more" };
  for (const to of [...cuts, b.length]) {
    if (to <= from) continue;
    r = d.push(b.slice(from, to));
    from = to;
  }
  return r;
}
const everyByte = (b: Uint8Array) => Array.from({ length: b.length }, (_, i) => i);
const host = (h: string | null): HeadResult => ({ status: "head", host: h });
const error = (e: HeadError): HeadResult => ({ status: "error", error: e });

describe("request heads", () => {
  test.each<[string, string, HeadResult]>([
    ["curl's head", "GET / HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", host("app.example.com")],
    ["port dropped, case folded", "GET / HTTP/1.1\r\nhOsT: App.Example.COM:8080\r\n\r\n", host("app.example.com")],
    ["trailing dot dropped", "GET / HTTP/1.1\r\nHost: app.example.com.\r\n\r\n", host("app.example.com")],
    ["spaces around the value", "GET / HTTP/1.1\r\nHost: \t a.example \t\r\n\r\n", host("a.example")],
    ["empty port", "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", host("a.example")],
    ["IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", host("[::1]")],
    ["bare LF lines", "GET / HTTP/1.1\nHost: a.example\n\n", host("a.example")],
    ["leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", host("a.example")],
    ["HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", host(null)],
    ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", host(null)],
    ["empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", host(null)],
    ["absolute-form wins over Host", "GET http://user@b.example:81/x HTTP/1.1\r\nHost: a.example\r\n\r\n", host("b.example")],
    ["body after the head is not read", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\n\u0000\u0001\u0002\r\n", host("a.example")],
    ["HTTP/2 prior-knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", { status: "h2_preface" }],
    ["two Host fields", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", error("bad_host")],
    ["Host with a path", "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n", error("bad_host")],
    ["Host with a bad port", "GET / HTTP/1.1\r\nHost: a.example:8x\r\n\r\n", error("bad_host")],
    ["Host with an unclosed bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", error("bad_host")],
    ["only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", error("bad_host")],
    ["space before the colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", error("malformed")],
    ["obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: a.example\r\n\r\n", error("malformed")],
    ["NUL in a field", "GET / HTTP/1.1\r\nHost: a\u0000.example\r\n\r\n", error("malformed")],
    ["HTTP/2.0 without PRI", "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n", error("malformed")],
    ["HTTP/0.9 request line", "GET /\r\n\r\n", error("malformed")],
    ["no request target", "GET HTTP/1.1\r\n\r\n", error("malformed")],
  ])("%s", (_name, text, want) => {
    const b = enc(text);
    expect(decode(b)).toEqual(want);
    expect(decodeSplit(b, everyByte(b))).toEqual(want);
  });

  test("a TLS ClientHello (or any binary) is malformed at its first byte, without waiting for a head", () => {
    expect(decode(Uint8Array.of(0x16, 0x03, 0x01))).toEqual(error("malformed"));
    expect(decodeSplit(enc("GE\u0016"), [1, 2])).toEqual(error("malformed"));
    expect(decode(enc(`${"A".repeat(33)} / HTTP/1.1`))).toEqual(error("malformed"));
  });

  test("every proper prefix of a head asks for more", () => {
    const b = enc("GET /index.html HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    for (let n = 0; n < b.length; n++) expect(decode(b.subarray(0, n)).status).toBe("more");
  });

  test("a head that does not end within 16 KiB is oversized; one that ends exactly there decodes", () => {
    const start = "GET / HTTP/1.1\r\nHost: a.example\r\nX: ";
    const fits = `${start}${"a".repeat(HEAD_MAX_BYTES - start.length - 4)}\r\n\r\n`;
    expect(fits.length).toBe(HEAD_MAX_BYTES);
    expect(decode(enc(fits))).toEqual(host("a.example"));
    expect(decodeSplit(enc(fits), [10, 5000, 16_383])).toEqual(host("a.example"));
    const over = `${start}${"a".repeat(HEAD_MAX_BYTES)}\r\n\r\n`;
    expect(decode(enc(over))).toEqual(error("oversized"));
    expect(decodeSplit(enc(over), [100, 9000])).toEqual(error("oversized"));
    expect(decode(enc(`\r\n`.repeat(HEAD_MAX_BYTES)))).toEqual(error("oversized"));
  });

  test("hostOfAuthority", () => {
    expect(hostOfAuthority("")).toBeNull();
    expect(hostOfAuthority("A.b:443")).toBe("a.b");
    expect(hostOfAuthority("a.b:123456")).toBeUndefined();
    expect(hostOfAuthority("[::1]x")).toBeUndefined();
    expect(hostOfAuthority("a b")).toBeUndefined();
  });
});

describe("answers", () => {
  test("error responses are complete HTTP/1.1 responses that close and name nothing internal", () => {
    for (const status of [400, 404, 431] as const) {
      const text = new TextDecoder().decode(httpErrorResponse(status));
      const [head = "", body = ""] = text.split("\r\n\r\n");
      expect(head).toStartWith(`HTTP/1.1 ${status} `);
      expect(head).toContain("Connection: close");
      expect(head).toContain(`Content-Length: ${body.length}`);
      expect(text.toLowerCase()).not.toMatch(/backchannel|edge|cluster|service|agent/);
    }
  });

  test("the HTTP/2 answer is an empty SETTINGS frame then GOAWAY(HTTP_1_1_REQUIRED)", () => {
    expect(Buffer.from(h2GoAwayHttp11Required()).toString("hex")).toBe(
      "000000040000000000" + "0000080700" + "00000000" + "00000000" + "0000000d");
  });
});

test("fuzz: 50,000 seeded heads and mutations never throw and decode the same whole or split", () => {
  const rng = new Prng(0x484f5354);
  const bases = [
    "GET / HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "POST http://a.example/x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  ].map(enc);
  const alphabet = enc("\r\n :[]./Hhost\u0000\t@A1");
  for (let i = 0; i < 50_000; i++) {
    let b = rng.pick(bases).slice();
    for (let k = rng.range(1, 4); k > 0; k--) {
      const at = rng.int(b.length + 1);
      const op = rng.int(3);
      if (op === 0) b = b.slice(0, at);
      else if (op === 1) b = Uint8Array.from([...b.subarray(0, at), rng.pick([...alphabet]), ...b.subarray(at)]);
      else if (at < b.length) b[at] = rng.pick([...alphabet]);
    }
    const cuts = Array.from({ length: rng.range(1, 5) }, () => rng.int(b.length + 1)).sort((x, y) => x - y);
    const whole = decode(b);
    const split = decodeSplit(b, cuts);
    if (JSON.stringify(whole) !== JSON.stringify(split)) {
      throw new Error(`case ${i}: ${JSON.stringify(whole)} vs ${JSON.stringify(split)}: ${JSON.stringify(new TextDecoder().decode(b))}`);
    }
  }
}, 60_000);
