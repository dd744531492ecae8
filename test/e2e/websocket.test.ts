/**
 * The WebSocket transport end to end without a reverse proxy: wss:// straight to TUNNEL_WS_LISTEN with a pinned
 * self-signed certificate (a wrong pin refused with ERR_TLS), wss:// through tinyproxy (CONNECT, then TLS, then the
 * upgrade), a wrong path refused with the server's 404 (ERR_WEBSOCKET), a proxy that cannot reach the server
 * (ERR_PROXY); every transfer byte-exact.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { loadOrCreateIdentity } from "../../src/transport/identity.ts";
import { certificatePin } from "../../src/transport/pem.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { captureLogs } from "../support/security-logs.ts";
import { freePort, missingMiddleboxes, startTinyproxy, type Middlebox } from "../support/middleboxes.ts";

const SECRET = "websocket-secret-0123456789";
const MiB = 1024 * 1024;
let echo: TestServer;
let stateDir: string;
let pin: string;
const boxes: Middlebox[] = [];
const agents: AgentHandle[] = [];
beforeAll(async () => {
  echo = startEchoServer();
  stateDir = mkdtempSync(join(tmpdir(), "bc-ws-state-"));
  pin = certificatePin(new X509Certificate((await loadOrCreateIdentity(stateDir)).cert));
});
afterAll(() => {
  echo.stop();
  rmSync(stateDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  await Promise.all(boxes.splice(0).map((b) => b.stop()));
});

/** A TLS server (self-signed identity) with a TLS WebSocket listener. */
function wsServer() {
  return server({
    TUNNEL_TLS: "on",
    TUNNEL_STATE_DIR: stateDir,
    TUNNEL_CLUSTERS: `edge=hmac-sha256:${SECRET}`,
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_WS_LISTEN: "127.0.0.1:0",
  });
}

function env(servers: string, extra: Record<string, string> = {}): Record<string, string> {
  return { TUNNEL_TLS: "on", TUNNEL_TLS_PIN: pin, TUNNEL_SERVERS: servers, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL_POLICY: "hmac-sha256", TUNNEL_CREDENTIAL: SECRET, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, ...extra };
}

/** Starts an agent that is expected not to connect; resolves with the first log line `msg`. */
async function failingAgent(e: Record<string, string>, msg: string) {
  const logs = captureLogs("warn");
  try {
    agents.push(await startAgent(agentConfig(e)));
    await waitFor(() => logs.find(msg).length > 0, `"${msg}" to be logged`, 10_000);
    return logs.find(msg)[0];
  } finally {
    logs.restore();
  }
}

describe("WebSocket transport", () => {
  test("wss:// with a pinned self-signed certificate, hmac-sha256: 32 MiB each way byte-exact", async () => {
    const srv = await wsServer();
    await agent(srv, env(`wss://127.0.0.1:${srv.wsPort}/backchannel`));
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 3, sendBytes: 32 * MiB });
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
  }, 60_000);

  test("wss:// with a pin that does not match is refused before anything is sent (ERR_TLS)", async () => {
    const srv = await wsServer();
    const other = `sha256:${Buffer.alloc(32, 7).toString("base64")}`;
    const line = await failingAgent(env(`wss://127.0.0.1:${srv.wsPort}/backchannel`, { TUNNEL_TLS_PIN: other }), "TLS with the server failed");
    expect(line?.code).toBe("ERR_TLS");
    expect(srv.registry.hosts().next().done).toBe(true);
  }, 30_000);

  test("a path the server does not upgrade: its 404 is the reason (ERR_WEBSOCKET)", async () => {
    const srv = await wsServer();
    const line = await failingAgent(env(`wss://127.0.0.1:${srv.wsPort}/elsewhere`), "connection down");
    expect(line?.code).toBe("ERR_WEBSOCKET");
    expect(String(line?.reason)).toContain("404 Not Found");
  }, 30_000);

  describe.skipIf(missingMiddleboxes() !== null)("through tinyproxy", () => {
    test("wss:// through an HTTP CONNECT proxy: 16 MiB each way byte-exact, the pin still checked", async () => {
      const srv = await wsServer();
      const proxy = await startTinyproxy({ user: "bob", password: "proxy-pass-1234" });
      boxes.push(proxy);
      await agent(srv, env(`wss://127.0.0.1:${srv.wsPort}/backchannel`, { TUNNEL_PROXY: `http://bob:proxy-pass-1234@127.0.0.1:${proxy.port}` }));
      const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 4, sendBytes: 16 * MiB });
      expect(r.error).toBeNull();
      expect(r.ok).toBe(true);
      expect(proxy.log()).toContain(`127.0.0.1:${srv.wsPort}`);
    }, 60_000);

    test("a proxy that cannot reach the server: its refusal is logged with the status line (ERR_PROXY)", async () => {
      const proxy = await startTinyproxy({ user: "bob", password: "proxy-pass-1234" });
      boxes.push(proxy);
      const line = await failingAgent(env(`127.0.0.1:${freePort()}`, { TUNNEL_PROXY: `http://bob:proxy-pass-1234@127.0.0.1:${proxy.port}` }), "connection down");
      expect(line?.code).toBe("ERR_PROXY");
      expect(String(line?.reason)).toMatch(/refused CONNECT 127\.0\.0\.1:\d+: HTTP\/1\.[01] 5\d\d/);
    }, 30_000);
  });
});
