/**
 * The defined outcome of every kind of visitor on an address shared by name (server/name-sniffer.ts), over real
 * loopback sockets: the bytes each gets back (alerts and responses byte-exact), that routed visitors' first bytes
 * reach the service byte-exact however they were split (also after a failover), the counters, the access log,
 * and that the process goes on serving.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { configureLogging } from "../../src/log.ts";
import { fatalAlert, TlsAlert } from "../../src/protocol/client-hello.ts";
import { httpErrorResponse } from "../../src/protocol/http-head.ts";
import type { ServerHandle } from "../../src/server/server.ts";
import { PatternSource } from "../support/pattern.ts";
import { concat, rawVisitor, startRecorder } from "../support/name-routes.ts";
import { waitFor } from "../support/net.ts";
import { ext, fixture, helloMessage, messageOf, records, serverNameExt } from "../support/tls-hello.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const rec = startRecorder();
const enc = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytewise = (b: Uint8Array) => Array.from(b, (x) => Uint8Array.of(x));

type Line = Record<string, unknown>;
let lines: Line[] = [];
beforeAll(() => configureLogging({ level: "info", format: "json", write: (l) => lines.push(JSON.parse(l) as Line) }));
afterEach(async () => {
  await stopAll();
  lines = [];
});
afterAll(() => {
  rec.stop();
  configureLogging({ level: "error", format: "json" });
});

/** sni routes (or host routes) on one port to the recorder, a deadline of 400 ms, and one agent. */
async function start(kind: "sni" | "host", env: Record<string, string> = {}): Promise<{ srv: ServerHandle; port: number }> {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: `127.0.0.1:0=edge/rec;${kind}=app.example.com,127.0.0.1:0=edge/rec;${kind}=*.example.org`,
    TUNNEL_HANDSHAKE_TIMEOUT_MS: "400",
    ...env,
  });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `rec=127.0.0.1:${rec.port}` });
  return { srv, port: srv.routePorts[0] as number };
}

const reasons = (srv: ServerHandle) => new Map([...srv.stats.unroutedByReason].map(([k, n]) => [k.split("\u0000")[2], n]));
const refusals = () => lines.filter((l) => l.tag === "access" && l.msg === "visitor refused");

describe("TLS (sni)", () => {
  test("a visitor that sends nothing is closed at the deadline, with nothing written; counted and logged", async () => {
    const { srv, port } = await start("sni");
    const t0 = performance.now();
    const r = await rawVisitor(port, []);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
    expect(r.received.length).toBe(0);
    expect(reasons(srv)).toEqual(new Map([["timeout", 1]]));
    expect(refusals()[0]).toMatchObject({ listen: `127.0.0.1:${port}`, match: "sni", reason: "timeout" });
  }, 20_000);

  test("a ClientHello split into 1-byte writes, then data and FIN, reaches its route byte-exact", async () => {
    const { srv, port } = await start("sni");
    const hello = fixture("curl.bin");
    const after = new PatternSource(5).next(100_000, true);
    const before = rec.connections.length;
    await rawVisitor(port, [...bytewise(hello), after], { fin: true });
    await waitFor(() => rec.connections.length > before && srv.stats.streamsActive === 0, "the stream to end");
    expect(hex(concat(rec.connections[before] as Uint8Array[]))).toBe(hex(concat([hello, after])));
    const closed = lines.find((l) => l.tag === "access" && l.msg === "stream closed");
    expect(closed).toMatchObject({ match: "app.example.com", name: "app.example.com", bytesOut: hello.length + after.length });
  }, 20_000);

  test("a ClientHello in 10-byte records over 3-byte writes reaches the wildcard route byte-exact", async () => {
    const { srv, port } = await start("sni");
    const hello = records(helloMessage([serverNameExt([[0, "a.b.example.org"]])]), [10]);
    const pieces = Array.from({ length: Math.ceil(hello.length / 3) }, (_, i) => hello.slice(i * 3, i * 3 + 3));
    const before = rec.connections.length;
    await rawVisitor(port, pieces, { fin: true });
    await waitFor(() => rec.connections.length > before && srv.stats.streamsActive === 0, "the stream to end");
    expect(hex(concat(rec.connections[before] as Uint8Array[]))).toBe(hex(hello));
    expect(srv.stats.routedByIndex.get(1)).toBe(1);
  }, 20_000);

  test.each([
    ["an unknown name", fixture("openssl.bin").slice(), "unrecognized"],
    ["no name and no default route", fixture("openssl-noservername.bin"), "unrecognized"],
    ["a malformed ClientHello", records(helloMessage([ext(0, [])])), "decode"],
    ["an oversized ClientHello", records(helloMessage([ext(21, new Array<number>(17_000).fill(0))]), [16_384]), "decode"],
  ])("%s: a fatal alert record, then the connection closes", async (name, bytes, alert) => {
    if (name === "an unknown name") bytes.set(enc("app.example.net"), Buffer.from(bytes).indexOf("app.example.com"));
    const { srv, port } = await start("sni");
    const r = await rawVisitor(port, [bytes]);
    const want = fatalAlert(alert === "decode" ? TlsAlert.DECODE_ERROR : TlsAlert.UNRECOGNIZED_NAME);
    expect(hex(r.received)).toBe(hex(want));
    expect(srv.stats.streamsTotal).toBe(0);
    const reason = { "an unknown name": "no_match", "no name and no default route": "no_match",
      "a malformed ClientHello": "malformed", "an oversized ClientHello": "oversized" }[name];
    expect(reasons(srv)).toEqual(new Map([[reason, 1]]));
    if (name === "an unknown name") expect(refusals()[0]).toMatchObject({ name: "app.example.net", reason: "no_match" });
  }, 20_000);

  test("bytes that are not TLS, or a FIN in the middle of a ClientHello: closed with nothing written", async () => {
    const { srv, port } = await start("sni");
    expect((await rawVisitor(port, [enc("GET / HTTP/1.1\r\n\r\n")])).received.length).toBe(0);
    const half = fixture("curl.bin").subarray(0, 100);
    expect((await rawVisitor(port, [half], { fin: true })).received.length).toBe(0);
    expect(reasons(srv)).toEqual(new Map([["not_tls", 1], ["incomplete", 1]]));
  }, 20_000);

  test("a refusal by the first agent: the visitor goes to another, the sniffed bytes replayed byte-exact", async () => {
    const { srv, port } = await start("sni");
    // A second agent that has no service "rec" refuses the stream (UNKNOWN_SERVICE) before taking a byte.
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "edge-2", TUNNEL_SERVICES: "other=127.0.0.1:9" });
    const before = rec.connections.length;
    const hello = fixture("chromium.bin");
    for (let i = 0; i < 4; i++) await rawVisitor(port, [...bytewise(hello.subarray(0, 50)), hello.subarray(50)], { fin: true });
    await waitFor(() => rec.connections.length >= before + 4 && srv.stats.streamsActive === 0, "the streams to end");
    for (const c of rec.connections.slice(before)) expect(hex(concat(c))).toBe(hex(hello));
    expect([...srv.stats.retriedByRouteCode.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 20_000);
});

describe("HTTP (host)", () => {
  test.each([
    ["no Host and no default", "GET / HTTP/1.1\r\n\r\n", 400, "no_host"],
    ["two Host fields", "GET / HTTP/1.1\r\nHost: app.example.com\r\nHost: x.example.org\r\n\r\n", 400, "bad_host"],
    ["not HTTP", "\u0016\u0003\u0001\u0002\u0000", 400, "malformed"],
    ["an unknown host", "GET / HTTP/1.1\r\nHost: app.example.net\r\n\r\n", 404, "no_match"],
    ["a head over 16 KiB", `GET / HTTP/1.1\r\nHost: app.example.com\r\nX: ${"a".repeat(17_000)}\r\n\r\n`, 431, "oversized"],
  ] as const)("%s: %d, then the connection closes", async (_name, text, status, reason) => {
    const { srv, port } = await start("host");
    const r = await rawVisitor(port, [enc(text)]);
    expect(hex(r.received)).toBe(hex(httpErrorResponse(status)));
    expect(reasons(srv)).toEqual(new Map([[reason, 1]]));
  }, 20_000);

  test("with a default route: an HTTP/2 preface goes there byte-exact; a repeated Host is still a 400", async () => {
    const { srv, port } = await start("host", {
      TUNNEL_ROUTES: "127.0.0.1:0=edge/rec;host=app.example.com,127.0.0.1:0=edge/rec",
    });
    const preface = concat([enc("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Uint8Array.of(0, 0, 0, 4, 0, 0, 0, 0, 0)]);
    const before = rec.connections.length;
    await rawVisitor(port, [preface], { fin: true });
    await waitFor(() => rec.connections.length > before && srv.stats.streamsActive === 0, "the stream to end");
    expect(hex(concat(rec.connections[before] as Uint8Array[]))).toBe(hex(preface));
    expect(srv.stats.routedByIndex.get(1)).toBe(1);
    const r = await rawVisitor(port, [enc("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")]);
    expect(hex(r.received)).toBe(hex(httpErrorResponse(400)));
    expect(reasons(srv)).toEqual(new Map([["bad_host", 1]]));
  }, 20_000);

  test("a head split into 1-byte writes, with a body, reaches its route byte-exact; the process goes on serving", async () => {
    const { srv, port } = await start("host");
    const head = enc("POST /x HTTP/1.1\r\nHost: App.Example.com:80\r\nContent-Length: 50000\r\n\r\n");
    const body = new PatternSource(9).next(50_000, true);
    const before = rec.connections.length;
    await rawVisitor(port, [...bytewise(head), body], { fin: true });
    await waitFor(() => rec.connections.length > before && srv.stats.streamsActive === 0, "the stream to end");
    expect(hex(concat(rec.connections[before] as Uint8Array[]))).toBe(hex(concat([head, body])));
    // Nothing sent, then more visitors: every one still served.
    await rawVisitor(port, []);
    for (let i = 0; i < 3; i++) await rawVisitor(port, [enc("GET / HTTP/1.0\r\nHost: x.example.org\r\n\r\n")], { fin: true });
    await waitFor(() => rec.connections.length === before + 4 && srv.stats.streamsActive === 0, "three more visitors");
    expect(srv.stats.routedByIndex.get(1)).toBe(3);
  }, 20_000);
});
