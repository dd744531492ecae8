/**
 * TLS and mTLS between agent and server, with material made by scripts/lib/certs.ts: the right setup carries
 * traffic byte-exact; the agent refuses a server certificate from another CA, for another name, or expired (logged
 * as ERR_TLS, retried with backoff); under TUNNEL_TLS_CLIENT_CA the server refuses agents without a certificate,
 * with one from another CA, or with an identity the cluster does not allow (status 2 AUTH_FAILED).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { startServer } from "../../src/server/server.ts";
import { loadConfig } from "../../src/config.ts";
import { isTunnelError } from "../../src/errors.ts";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import { agent, agentConfig, server, serverConfig, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";
import { sourceCommand, spawnRole } from "../../scripts/lib/roles.ts";

const TOKEN = "tls-test-token-0123456789";
let echo: TestServer;
let logs: Capture;
const agents: AgentHandle[] = [];

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
  logs = captureLogs("debug");
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  logs.clear();
});
afterAll(() => {
  echo.stop();
  logs.restore();
});

/** Starts an agent without waiting for it to connect. */
async function startRawAgent(env: Record<string, string>): Promise<AgentHandle> {
  const a = await startAgent(agentConfig({ TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...env }));
  agents.push(a);
  return a;
}

async function throughTunnel(routePort: number, bytes: number): Promise<void> {
  const results = await Promise.all(
    [1, 2, 3].map((seed) => runVisitor({ port: routePort, seed, sendBytes: bytes })),
  );
  for (const r of results) {
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
    expect(r.received).toBe(bytes);
  }
}

describe("the right setup works", () => {
  test("token over TLS: traffic flows byte-exact", async () => {
    const srv = await server({
      ...serverTlsEnv(),
      TUNNEL_CLUSTERS: `edge=token:${TOKEN}`,
      TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    });
    await agent(srv, { ...agentTlsEnv(), TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    await throughTunnel(srv.routePorts[0] as number, 1 << 20);
  });

  test("the server name is checked: TUNNEL_TLS_SERVER_NAME=localhost matches the certificate", async () => {
    const srv = await server({ ...serverTlsEnv(), TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    await agent(srv, {
      ...agentTlsEnv({ serverName: "localhost" }),
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CREDENTIAL: TOKEN,
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    });
    await throughTunnel(srv.routePorts[0] as number, 64 * 1024);
  });

  test("a server given by name is verified against that name, not the address it resolves to", async () => {
    const srv = await server({ ...serverTlsEnv({ server: testCerts().serverDnsOnly }), TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    const a = await startRawAgent({ ...agentTlsEnv(), TUNNEL_SERVERS: `localhost:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN });
    await a.ready();
    expect(a.slots.map((s) => s.serverHost)).toContain("127.0.0.1");
    await throughTunnel(srv.routePorts[0] as number, 64 * 1024);
    // The same certificate does not cover the address itself.
    const byIp = await startRawAgent({ ...agentTlsEnv(), TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_HOSTNAME: "edge-9" });
    await waitFor(() => logs.find("TLS with the server failed").some((l) => String(l.reason).includes("ERR_TLS_CERT_ALTNAME_INVALID")), "IP refused");
    expect(byIp.slots.every((s) => s.state !== "ready")).toBe(true);
  });

  test("mtls: the agent's certificate is its credential; traffic flows byte-exact", async () => {
    const c = testCerts();
    const srv = await server({
      ...serverTlsEnv({ clientCa: c.ca }),
      TUNNEL_CLUSTERS: "edge=mtls:edge-1",
      TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    });
    await agent(srv, {
      ...agentTlsEnv({ client: c.agent }),
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CREDENTIAL_POLICY: "mtls",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    });
    await throughTunnel(srv.routePorts[0] as number, 1 << 20);
    expect(srv.stats.handshakes.get(HandshakeStatus.SUCCESS)).toBeGreaterThanOrEqual(1);
  });

  test("a client CA with a token cluster: a token agent with a good certificate joins", async () => {
    const c = testCerts();
    const srv = await server({ ...serverTlsEnv({ clientCa: c.ca }), TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    await agent(srv, { ...agentTlsEnv({ client: c.agent2 }), TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    await throughTunnel(srv.routePorts[0] as number, 64 * 1024);
  });
});

describe("the agent refuses the server", () => {
  const cases: { name: string; server: () => { cert: string; key: string }; env: Record<string, string>; reason: string }[] = [
    { name: "a certificate from another CA", server: () => testCerts().serverOther, env: {}, reason: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" },
    { name: "a wrong server name", server: () => testCerts().server, env: { TUNNEL_TLS_SERVER_NAME: "cloud.example.com" }, reason: "ERR_TLS_CERT_ALTNAME_INVALID" },
    { name: "an expired certificate", server: () => testCerts().serverExpired, env: {}, reason: "CERT_HAS_EXPIRED" },
  ];
  for (const c of cases) {
    test(`${c.name}: ERR_TLS logged with the reason, retried with backoff, never joins`, async () => {
      const srv = await server({ ...serverTlsEnv({ server: c.server() }), TUNNEL_CLUSTERS: `edge=token:${TOKEN}` });
      const a = await startRawAgent({
        ...agentTlsEnv(),
        ...c.env,
        TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
        TUNNEL_CLUSTER: "edge",
        TUNNEL_CREDENTIAL: TOKEN,
      });
      // Two failures: the first attempt and at least one retry after a backoff.
      await waitFor(() => logs.find("TLS with the server failed", { code: "ERR_TLS" }).length >= 2, "two ERR_TLS lines");
      const line = logs.find("TLS with the server failed")[0];
      expect(line?.level).toBe("error");
      expect(String(line?.reason)).toContain(c.reason);
      expect(typeof line?.retryInMs).toBe("number"); // full jitter: any delay in [0, ceiling], 0 included
      expect(Number(line?.retryInMs)).toBeGreaterThanOrEqual(0);
      expect(a.slots.every((s) => s.state !== "ready")).toBe(true);
      expect(srv.stats.handshakes.get(HandshakeStatus.SUCCESS) ?? 0).toBe(0);
      expect([...srv.registry.hosts()].length).toBe(0);
      // The credential never left the agent: the server read no InitInfo.
      expect(srv.stats.handshakes.get(HandshakeStatus.AUTH_FAILED) ?? 0).toBe(0);
    });
  }

  test("a plaintext server: the agent with TLS on does not connect", async () => {
    const srv = await server({ TUNNEL_TLS: "off", TUNNEL_CLUSTERS: `edge=token:${TOKEN}` });
    const a = await startRawAgent({ ...agentTlsEnv(), TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN });
    await waitFor(() => logs.find("connection down").length + logs.find("TLS with the server failed").length >= 2, "failed attempts");
    expect(a.slots.every((s) => s.state !== "ready")).toBe(true);
    expect(srv.stats.handshakes.get(HandshakeStatus.SUCCESS) ?? 0).toBe(0);
    // The server read a TLS ClientHello as a handshake frame: malformed, never the credential.
    expect(srv.stats.handshakes.get(HandshakeStatus.MALFORMED)).toBeGreaterThanOrEqual(1);
  });
});

describe("the server refuses agents under TUNNEL_TLS_CLIENT_CA", () => {
  const cases = [
    { name: "no client certificate", client: () => undefined, cluster: "edge=mtls:edge-1", policy: "mtls" },
    { name: "a certificate from another CA", client: () => testCerts().agentOther, cluster: "edge=mtls:edge-1", policy: "mtls" },
    { name: "a good certificate whose identity the cluster does not allow", client: () => testCerts().agent2, cluster: "edge=mtls:edge-1", policy: "mtls" },
    { name: "no client certificate, even with the right token", client: () => undefined, cluster: `edge=token:${TOKEN}`, policy: "token" },
    { name: "another CA's certificate, even with the right token", client: () => testCerts().agentOther, cluster: `edge=token:${TOKEN}`, policy: "token" },
  ];
  for (const c of cases) {
    test(`${c.name}: status 2, logged, never registered`, async () => {
      const srv = await server({ ...serverTlsEnv({ clientCa: testCerts().ca }), TUNNEL_CLUSTERS: c.cluster, TUNNEL_AUTH_FAILURE_LIMIT: "0" });
      const client = c.client();
      const a = await startRawAgent({
        ...agentTlsEnv({ client }),
        TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
        TUNNEL_CLUSTER: "edge",
        ...(c.policy === "token" ? { TUNNEL_CREDENTIAL: TOKEN } : { TUNNEL_CREDENTIAL_POLICY: "mtls" }),
        ...(c.policy === "mtls" && client === undefined ? { TUNNEL_CREDENTIAL_POLICY: "none" } : {}),
      });
      await waitFor(() => (srv.stats.handshakes.get(HandshakeStatus.AUTH_FAILED) ?? 0) >= 2, "two refusals");
      await waitFor(() => logs.find("handshake refused").length >= 1, "the agent's error line");
      expect(String(logs.find("handshake refused")[0]?.reason)).toContain("AUTH_FAILED");
      expect(a.slots.every((s) => s.state !== "ready")).toBe(true);
      expect(srv.stats.handshakes.get(HandshakeStatus.SUCCESS) ?? 0).toBe(0);
      expect([...srv.registry.hosts()].length).toBe(0);
      const refused = logs.find("agent handshake refused");
      expect(refused.length).toBeGreaterThanOrEqual(1);
      if (c.name.includes("identity")) expect(refused[0]?.code).toBe("ERR_AUTH");
      else expect(refused[0]?.code).toBe("ERR_TLS");
    });
  }
});

describe("fail closed at startup", () => {
  test("TLS on (the default) with a certificate but no key: the config is refused", () => {
    const r = loadConfig({ TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_TLS_CERT: testCerts().server.cert }, "server");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join("\n")).toContain("TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together");
  });

  test("unusable TLS files: ERR_TLS_CONFIG naming the variable, never the content", async () => {
    const c = testCerts();
    const junk = join(c.dir, "junk.pem");
    writeFileSync(junk, "not a certificate: SECRET-LOOKING-CONTENT\n");
    const bad: { env: Record<string, string>; variable: string }[] = [
      { env: { TUNNEL_TLS_CERT: junk }, variable: "TUNNEL_TLS_CERT" },
      { env: { TUNNEL_TLS_KEY: junk }, variable: "TUNNEL_TLS_KEY" },
      { env: { TUNNEL_TLS_KEY: c.agent.key }, variable: "TUNNEL_TLS_KEY" }, // the key of another certificate
      { env: { TUNNEL_TLS_CLIENT_CA: junk }, variable: "TUNNEL_TLS_CLIENT_CA" },
      { env: { TUNNEL_TLS_CERT: join(c.dir, "missing.pem") }, variable: "TUNNEL_TLS_CERT" },
    ];
    for (const b of bad) {
      const config = serverConfig({ ...serverTlsEnv(), TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, ...b.env });
      const e = await startServer(config).then(
        () => null,
        (err: unknown) => err,
      );
      expect(isTunnelError(e, "ERR_TLS_CONFIG")).toBe(true);
      expect((e as Error).message).toContain(b.variable);
      expect((e as Error).message).not.toContain("SECRET-LOOKING");
    }
    // The agent checks its CA file the same way.
    const e = await startAgent(agentConfig({ ...agentTlsEnv(), TUNNEL_TLS_CA: junk, TUNNEL_SERVERS: "127.0.0.1:1", TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "a=127.0.0.1:1" })).then(
      () => null,
      (err: unknown) => err,
    );
    expect(isTunnelError(e, "ERR_TLS_CONFIG")).toBe(true);
  });

  test("TUNNEL_TLS=off logs a plaintext warning at start (server and agent processes)", async () => {
    for (const mode of ["server", "agent"] as const) {
      const env: Record<string, string> = mode === "server"
        ? { TUNNEL_TLS: "off", TUNNEL_LISTEN: "127.0.0.1:0", TUNNEL_CLUSTERS: "edge=none" }
        : { TUNNEL_TLS: "off", TUNNEL_SERVERS: "127.0.0.1:1", TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "a=127.0.0.1:1" };
      const p = spawnRole(sourceCommand(mode), env);
      try {
        const line = await p.waitForLog((l) => l.level === "warn" && String(l.msg).includes("TLS is off"));
        expect(String(line.msg)).toContain("plaintext");
      } finally {
        await p.stop();
      }
    }
  });
});
