/**
 * Hostile peers against a running server (reliability.md S2, S4, S7, S10): oversized, truncated, garbage and
 * wrong-version handshakes; a wrong token, a replayed and a stale hmac credential; a ping flood from a peer that
 * never reads; per-source penalties for repeated authentication failures. Each gets its documented outcome (SPEC.md
 * §1.2/§1.5, README "Security model"), the process survives, and another agent's stream is undisturbed throughout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeCredential } from "../../src/auth/credential.ts";
import { encodeHandshake } from "../../src/protocol/handshake.ts";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import type { ServerHandle } from "../../src/server/server.ts";
import { AuthPenalties } from "../../src/server/gate.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";
import { heldVisitor, initInfo, pingFrame, rawAgent, type HeldVisitor } from "../support/security-net.ts";

const TOKEN = "hostile-token-0123456789";
const HMAC = "hostile-hmac-secret-0123456789";
const DEADLINE_MS = 600;
let echo: TestServer;
let srv: ServerHandle;
let victim: HeldVisitor;
let logs: Capture;

beforeAll(async () => {
  logs = captureLogs("info");
  echo = startEchoServer();
  srv = await server({
    TUNNEL_CLUSTERS: `edge=none,secure=token:${TOKEN},signed=hmac-sha256:${HMAC}`,
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_HANDSHAKE_TIMEOUT_MS: String(DEADLINE_MS),
    TUNNEL_AUTH_FAILURE_LIMIT: "0", // penalties have their own test below
  });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_CONNECTIONS: "1", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
  victim = await heldVisitor(srv.routePorts[0] as number);
  expect(await victim.roundTrip(4096)).toBe(true);
});
afterAll(async () => {
  // Every attack above ran while this stream was open: it must still be intact.
  expect(victim.isClosed()).toBe(false);
  expect(await victim.roundTrip(256 * 1024)).toBe(true);
  victim.close();
  await stopAll();
  echo.stop();
  logs.restore();
});

/** Sends bytes (optionally then FIN) and collects the answer until the server closes. */
function exchange(bytes: Uint8Array, opts: { fin?: boolean; port?: number } = {}): Promise<{ out: Buffer; ms: number }> {
  const chunks: Uint8Array[] = [];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port: opts.port ?? srv.agentPort,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.write(bytes);
          if (opts.fin) s.shutdown();
        },
        data(_s, d) {
          chunks.push(new Uint8Array(d));
        },
        close() {
          resolve({ out: Buffer.concat(chunks), ms: performance.now() - t0 });
        },
        connectError(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);
  });
}

function statusOf(out: Buffer): number | null {
  if (out.byteLength < 8) return null;
  return (JSON.parse(out.subarray(8, 8 + out.readUInt16BE(6)).toString()) as { status: number }).status;
}

function refusedWith(code: string): number {
  return logs.find("agent handshake refused", { code }).length;
}

async function expectRefused(bytes: Uint8Array, status: number | null, code: string, opts: { fin?: boolean } = {}) {
  const before = refusedWith(code);
  const { out, ms } = await exchange(bytes, opts);
  expect(statusOf(out)).toBe(status);
  await waitFor(() => refusedWith(code) > before, `a refusal logged with ${code}`);
  return ms;
}

function header(flagVersion: { version?: number; flag?: number; type?: number }, length: number): Uint8Array {
  return new Uint8Array([0x20, 0x88, flagVersion.version ?? 1, flagVersion.flag ?? 1, flagVersion.type ?? 1, 0, length >> 8, length & 0xff]);
}

describe("hostile handshakes", () => {
  test("oversized: a declared length over TUNNEL_HANDSHAKE_MAX_BYTES → 18 right after the header, body never read", async () => {
    const body = new Uint8Array(1 << 20).fill(0x7b);
    const bytes = new Uint8Array(8 + body.byteLength);
    bytes.set(header({}, 0xffff), 0);
    bytes.set(body, 8);
    await expectRefused(bytes, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_TOO_LARGE");
    await expectRefused(header({}, 16385), HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_TOO_LARGE");
  });

  test("truncated: half a frame then silence → closed at the deadline, no answer; then FIN → closed", async () => {
    const full = encodeHandshake({ flag: 1, body: initInfo() });
    const ms = await expectRefused(full.subarray(0, 40), null, "ERR_HANDSHAKE_TIMEOUT");
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS - 20);
    expect(ms).toBeLessThan(DEADLINE_MS + 1000);
    const msFin = await expectRefused(full.subarray(0, 40), null, "ERR_HANDSHAKE_CLOSED", { fin: true });
    expect(msFin).toBeLessThan(DEADLINE_MS);
  });

  test("garbage, a TLS ClientHello, an HTTP request → 18", async () => {
    const random = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    await expectRefused(random, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_MAGIC");
    await expectRefused(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_MAGIC");
    await expectRefused(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_MAGIC");
  });

  test("wrong version, wrong flag, invalid JSON, wrong shape → 18 with the decoder's code", async () => {
    const good = encodeHandshake({ flag: 1, body: initInfo() });
    const v2 = good.slice();
    v2[2] = 2;
    await expectRefused(v2, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_VERSION");
    const f2 = good.slice();
    f2[3] = 2;
    await expectRefused(f2, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_FLAG");
    const json = new TextEncoder().encode('{"cluster_name":');
    const bad = new Uint8Array(8 + json.byteLength);
    bad.set(header({}, json.byteLength), 0);
    bad.set(json, 8);
    await expectRefused(bad, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_JSON");
    const deep = new TextEncoder().encode("[".repeat(100) + "]".repeat(100));
    const nested = new Uint8Array(8 + deep.byteLength);
    nested.set(header({}, deep.byteLength), 0);
    nested.set(deep, 8);
    await expectRefused(nested, HandshakeStatus.MALFORMED, "ERR_HANDSHAKE_SHAPE");
  });

  test("wrong token → 2, the right one → 1", async () => {
    const wrong = encodeHandshake({ flag: 1, body: initInfo({ cluster_name: "secure", credential_policy: "token", credential: "wrong-token-0123456789" }) });
    await expectRefused(wrong, HandshakeStatus.AUTH_FAILED, "ERR_AUTH");
    const right = await rawAgent(srv.agentPort, initInfo({ cluster_name: "secure", credential_policy: "token", credential: TOKEN }));
    right.socket.end();
  });

  test("hmac-sha256: a replayed credential → 2, a stale one → 2, a fresh one → 1", async () => {
    const info = (credential: string) => initInfo({ cluster_name: "signed", host_name: "h1", credential_policy: "hmac-sha256", credential });
    const cred = makeCredential("hmac-sha256", HMAC, "signed", "h1", "plaintext");
    const first = await rawAgent(srv.agentPort, info(cred));
    first.socket.end();
    await expectRefused(encodeHandshake({ flag: 1, body: info(cred) }), HandshakeStatus.AUTH_FAILED, "ERR_AUTH");
    const stale = makeCredential("hmac-sha256", HMAC, "signed", "h1", "plaintext", Date.now() - 10 * 60_000);
    await expectRefused(encodeHandshake({ flag: 1, body: info(stale) }), HandshakeStatus.AUTH_FAILED, "ERR_AUTH");
    const future = makeCredential("hmac-sha256", HMAC, "signed", "h1", "plaintext", Date.now() + 10 * 60_000);
    await expectRefused(encodeHandshake({ flag: 1, body: info(future) }), HandshakeStatus.AUTH_FAILED, "ERR_AUTH");
    // Bound to the host name: a credential made for h1 does not work for h2.
    const other = makeCredential("hmac-sha256", HMAC, "signed", "h1", "plaintext");
    await expectRefused(encodeHandshake({ flag: 1, body: { ...info(other), host_name: "h2" } }), HandshakeStatus.AUTH_FAILED, "ERR_AUTH");
  });
});

describe("floods", () => {
  test("a peer that floods PINGs and never reads is disconnected (ERR_CONTROL_FLOOD); the server stays up", async () => {
    const flooder = await rawAgent(srv.agentPort, initInfo({ host_name: "flooder", extra: { backchannel: { version: 1, role: "data", slot: 0, instance: "flood", window: 1 << 20, max_frame: 1 << 18 } } }), { read: false });
    const batch = new Uint8Array(18 * 10_000);
    for (let i = 0; i < 10_000; i++) batch.set(pingFrame(i), i * 18);
    let sent = 0;
    const t0 = performance.now();
    while (!flooder.isClosed() && sent < 5_000_000 && performance.now() - t0 < 20_000) {
      if (!(await flooder.send(batch))) break;
      sent += 10_000;
    }
    await Promise.race([flooder.closed, Bun.sleep(5000)]);
    expect(flooder.isClosed()).toBe(true);
    await waitFor(() => logs.lines.some((l) => l.hostName === "flooder" && String(l.reason ?? "").includes("control replies")), "the flood logged");
    console.log(`ping flood: disconnected after ${sent} PINGs (${((sent * 18) / 1048576).toFixed(1)} MiB) in ${(performance.now() - t0).toFixed(0)} ms`);
    // The server is still up and admits a new agent.
    const again = await rawAgent(srv.agentPort, initInfo({ host_name: "after-flood" }));
    again.socket.end();
  }, 30_000);
});

describe("per-source penalties for failed authentication", () => {
  test("5 failures → refused (SERVER_BUSY with retry_after_ms) for the penalty, even with the right token; doubles next time", async () => {
    const s = await server({
      TUNNEL_CLUSTERS: `secure=token:${TOKEN}`,
      TUNNEL_AUTH_FAILURE_LIMIT: "5",
      TUNNEL_AUTH_PENALTY_MS: "400",
      TUNNEL_AUTH_PENALTY_MAX_MS: "1000",
    });
    const wrong = encodeHandshake({ flag: 1, body: initInfo({ cluster_name: "secure", credential_policy: "token", credential: "wrong-token-0123456789" }) });
    const right = encodeHandshake({ flag: 1, body: initInfo({ cluster_name: "secure", credential_policy: "token", credential: TOKEN }) });
    const unknown = encodeHandshake({ flag: 1, body: initInfo({ cluster_name: "nope", credential_policy: "token", credential: TOKEN }) });
    for (let i = 0; i < 4; i++) expect(statusOf((await exchange(wrong, { port: s.agentPort })).out)).toBe(HandshakeStatus.AUTH_FAILED);
    expect(statusOf((await exchange(unknown, { port: s.agentPort })).out)).toBe(HandshakeStatus.CLUSTER_NOT_EXIST); // 5th failure
    const t0 = performance.now();
    const busy = (await exchange(right, { port: s.agentPort })).out;
    expect(statusOf(busy)).toBe(HandshakeStatus.SERVER_BUSY);
    const retry = (JSON.parse(busy.subarray(8).toString()) as { retry_after_ms: number }).retry_after_ms;
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(400);
    expect(s.stats.limitHits.get("auth_penalty")).toBe(1);
    await Bun.sleep(Math.max(0, 420 - (performance.now() - t0)));
    // Served: the right token works again.
    const ok = await rawAgent(s.agentPort, initInfo({ cluster_name: "secure", credential_policy: "token", credential: TOKEN }));
    ok.socket.end();
    // Five more failures: the next penalty is twice as long (800 ms, under the 1000 ms maximum).
    for (let i = 0; i < 5; i++) await exchange(wrong, { port: s.agentPort });
    const second = (await exchange(right, { port: s.agentPort })).out;
    const retry2 = (JSON.parse(second.subarray(8).toString()) as { retry_after_ms: number }).retry_after_ms;
    expect(retry2).toBeGreaterThan(400);
    expect(retry2).toBeLessThanOrEqual(800);
  });

  test("AuthPenalties: window, doubling up to the maximum, forgetting, bounded memory, off at 0", () => {
    let now = 1_000_000;
    const p = new AuthPenalties({ authFailureLimit: 3, authFailureWindowMs: 1000, authPenaltyMs: 100, authPenaltyMaxMs: 350 }, () => now);
    expect(p.failure("a")).toBe(0);
    expect(p.failure("a")).toBe(0);
    now += 1500; // the window passed: counting starts again
    expect(p.failure("a")).toBe(0);
    expect(p.failure("a")).toBe(0);
    expect(p.remainingMs("a")).toBe(0);
    expect(p.failure("a")).toBe(100);
    expect(p.remainingMs("a")).toBe(100);
    expect(p.remainingMs("b")).toBe(0);
    now += 100;
    expect(p.remainingMs("a")).toBe(0);
    for (let i = 0; i < 2; i++) p.failure("a");
    expect(p.failure("a")).toBe(200);
    now += 200;
    for (let i = 0; i < 2; i++) p.failure("a");
    expect(p.failure("a")).toBe(350); // capped
    now += 350 + 1000 + 350 + 1;
    for (let i = 0; i < 2; i++) p.failure("a");
    expect(p.failure("a")).toBe(100); // quiet long enough: strikes forgotten
    for (let i = 0; i < 70_000; i++) p.failure(`10.0.${i >> 8}.${i & 255}`);
    expect(p.size).toBeLessThanOrEqual(65_536);
    const off = new AuthPenalties({ authFailureLimit: 0, authFailureWindowMs: 1000, authPenaltyMs: 100, authPenaltyMaxMs: 100 });
    for (let i = 0; i < 10; i++) expect(off.failure("a")).toBe(0);
    expect(off.remainingMs("a")).toBe(0);
  });
});
