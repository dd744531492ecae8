/**
 * Through real middleboxes (issue 17): an agent dialling wss:// through nginx (TLS terminated there, the upgrade
 * proxied to TUNNEL_WS_LISTEN) and another through tinyproxy (HTTP CONNECT with Basic auth) at the same time, 64 MiB
 * each way byte-exact; a wrong proxy password refused and logged without the password; nginx killed and back, the
 * agent reconnects.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { encodeHandshake } from "../../src/protocol/handshake.ts";
import { HandshakeFlag } from "../../src/protocol/constants.ts";
import { WsOp, encodeFrame } from "../../src/protocol/ws-frame.ts";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { captureLogs } from "../support/security-logs.ts";
import { missingMiddleboxes, startNginx, startTinyproxy, type Middlebox } from "../support/middleboxes.ts";

const SECRET = "middlebox-secret-0123456789";
const PROXY_PASSWORD = "pr0xy-Pa55word-do-not-log";
const MiB = 1024 * 1024;
const skip = missingMiddleboxes();
if (skip !== null) console.warn(`test/e2e/middleboxes.test.ts skipped: ${skip}`);

let echo: TestServer;
const boxes: Middlebox[] = [];
const agents: AgentHandle[] = [];
beforeAll(() => {
  echo = startEchoServer();
});
afterAll(() => echo.stop());
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  await Promise.all(boxes.splice(0).map((b) => b.stop()));
});

/** A TLS server with a plaintext WebSocket listener behind nginx (trusting it for X-Forwarded-For), two clusters. */
async function setup() {
  const srv = await server({
    ...serverTlsEnv(),
    TUNNEL_CLUSTERS: `a=token:${SECRET},b=token:${SECRET}`,
    TUNNEL_ROUTES: "127.0.0.1:0=a/echo,127.0.0.1:0=b/echo",
    TUNNEL_WS_LISTEN: "127.0.0.1:0",
    TUNNEL_WS_TLS: "off",
    TUNNEL_TRUSTED_PROXIES: "127.0.0.1/32",
  });
  const c = testCerts();
  const nginx = await startNginx({ upstream: srv.wsPort as number, cert: c.server.cert, key: c.server.key });
  boxes.push(nginx);
  return { srv, nginx };
}

/** Agent env for cluster `cluster` (token, TLS verified against the test CA). */
function agentEnv(cluster: string, hostname: string, servers: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...agentTlsEnv(), TUNNEL_SERVERS: servers, TUNNEL_CLUSTER: cluster, TUNNEL_CREDENTIAL: SECRET, TUNNEL_HOSTNAME: hostname, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...extra };
}

describe.skipIf(skip !== null)("through nginx and tinyproxy", () => {
  test("wss:// through nginx and TLS through tinyproxy at once: 64 MiB each way byte-exact on both", async () => {
    const { srv, nginx } = await setup();
    const proxy = await startTinyproxy({ user: "alice", password: PROXY_PASSWORD });
    boxes.push(proxy);
    const viaNginx = await agent(srv, agentEnv("a", "edge-nginx", `wss://127.0.0.1:${nginx.port}/backchannel`));
    const viaProxy = await agent(srv, agentEnv("b", "edge-proxy", `127.0.0.1:${srv.agentPort}`, { TUNNEL_PROXY: `http://alice:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}` }));
    expect([...viaNginx.peers.keys()]).toEqual([`wss://127.0.0.1:${nginx.port}/backchannel`]);
    const [a, b] = await Promise.all([
      runVisitor({ port: srv.routePorts[0] as number, seed: 17, sendBytes: 64 * MiB }),
      runVisitor({ port: srv.routePorts[1] as number, seed: 18, sendBytes: 64 * MiB }),
    ]);
    for (const r of [a, b]) {
      expect(r.error).toBeNull();
      expect(r.received).toBe(64 * MiB);
      expect(r.ok).toBe(true);
    }
    // The bytes really went through the middleboxes: tinyproxy logged the CONNECT, nginx is the WebSocket peer.
    expect(proxy.log()).toContain(`127.0.0.1:${srv.agentPort}`);
    const hosts = [...srv.registry.hosts()];
    expect(hosts.map((h) => h.hostName).sort()).toEqual(["edge-nginx", "edge-proxy"]);
    // nginx forwarded the agent's own address (127.0.0.1) in X-Forwarded-For, from a trusted peer.
    expect(hosts.find((h) => h.hostName === "edge-nginx")?.remoteAddress).toBe("127.0.0.1");
  }, 120_000);

  test("through nginx, a Forwarded field the agent wrote itself does not choose its address (nginx sets X-Forwarded-For only)", async () => {
    const { srv, nginx } = await setup();
    const logs = captureLogs("warn");
    try {
      // A hostile agent from 127.0.0.2 (not a trusted proxy) claims 203.0.113.9 in its own Forwarded field.
      const got: Buffer[] = [];
      const sock = tlsConnect({ socket: netConnect({ host: "127.0.0.1", port: nginx.port, localAddress: "127.0.0.2" }), rejectUnauthorized: false });
      const closed = new Promise<void>((r) => sock.on("close", () => r()));
      sock.on("error", () => {});
      sock.on("data", (d: Buffer) => void got.push(d));
      sock.write("GET /backchannel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nForwarded: for=203.0.113.9\r\n\r\n");
      await waitFor(() => Buffer.concat(got).toString("latin1").includes("\r\n\r\n"), "nginx's answer", 10_000);
      expect(Buffer.concat(got).toString("latin1")).toStartWith("HTTP/1.1 101");
      const body = { cluster_name: "a", weight: 10, host_name: "x", credential_policy: "token", credential: "wrong-wrong-wrong-wrong", extra: null };
      const f = encodeFrame(WsOp.BINARY, encodeHandshake({ flag: HandshakeFlag.INIT_INFO, body }), new Uint8Array([1, 2, 3, 4]));
      sock.write(f.buf.subarray(f.offset, f.offset + f.length));
      await waitFor(() => logs.find("agent handshake refused").length > 0, "the refusal to be logged", 10_000);
      expect(logs.find("agent handshake refused")[0]?.remote).toBe("127.0.0.2");
      sock.destroy();
      await closed;
    } finally {
      logs.restore();
    }
  }, 30_000);

  test("a wrong proxy password is refused (ERR_PROXY_AUTH with tinyproxy's status line) and never logged", async () => {
    const { srv } = await setup();
    const proxy = await startTinyproxy({ user: "alice", password: PROXY_PASSWORD });
    boxes.push(proxy);
    const wrong = `wr0ng-${PROXY_PASSWORD}`;
    const logs = captureLogs("debug");
    try {
      const cfg = agentConfig(agentEnv("b", "edge-proxy", `127.0.0.1:${srv.agentPort}`, { TUNNEL_PROXY: `http://alice:${wrong}@127.0.0.1:${proxy.port}` }));
      agents.push(await startAgent(cfg));
      await waitFor(() => logs.find("the proxy refused the proxy credentials").length >= 2, "the refusal to be logged", 10_000);
      const line = logs.find("the proxy refused the proxy credentials")[0];
      expect(line?.code).toBe("ERR_PROXY_AUTH");
      expect(String(line?.reason)).toContain("401 Unauthorized"); // tinyproxy 1.11 answers a bad CONNECT login 401
      expect(String(line?.reason)).toContain('user "alice"');
      expect(srv.registry.hosts().next().done).toBe(true);
      for (const raw of logs.raw) {
        expect(raw).not.toContain(wrong);
        expect(raw).not.toContain(Buffer.from(`alice:${wrong}`).toString("base64"));
      }
    } finally {
      logs.restore();
    }
  }, 30_000);

  test("nginx killed: the agent loses its connection and reconnects once nginx is back", async () => {
    const { srv, nginx } = await setup();
    const a = await agent(srv, agentEnv("a", "edge-nginx", `wss://127.0.0.1:${nginx.port}/backchannel`));
    const slot = a.slots[0];
    await nginx.kill();
    await waitFor(() => slot?.state !== "ready", "the agent to notice nginx is gone", 10_000);
    expect(srv.registry.hosts().next().done).toBe(true);
    await nginx.restart();
    await waitFor(() => slot?.state === "ready", "the agent to reconnect through nginx", 15_000);
    expect(slot?.reconnects).toBeGreaterThanOrEqual(1);
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 5, sendBytes: 4 * MiB });
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
  }, 60_000);
});
