/**
 * An hmac-sha256 handshake is bound to its TLS connection (issue 14, defect 3): a rogue or compromised server that
 * captures a real agent's InitInfo cannot replay it to another server sharing the secret, even at once; the honest
 * path (a real agent over TLS) still joins and carries traffic.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { HandshakeDecoder, type ConnectionInitInfo } from "../../src/protocol/handshake.ts";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, type TestServer } from "../support/net.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { rawAgent } from "../support/security-net.ts";

const SECRET = "hmac-binding-secret-0123456789";
let echo: TestServer;
const agents: AgentHandle[] = [];

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
});
afterAll(() => echo.stop());

const agentEnv = (): Record<string, string> => ({
  ...agentTlsEnv(),
  TUNNEL_CLUSTER: "edge",
  TUNNEL_CREDENTIAL_POLICY: "hmac-sha256",
  TUNNEL_CREDENTIAL: SECRET,
  TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
  TUNNEL_CONNECTIONS: "1",
});

/** A TLS server with a certificate the agent trusts that records the first InitInfo it receives and answers nothing. */
function captureServer(): { port: number; captured: Promise<ConnectionInitInfo>; stop(): void } {
  const c = testCerts();
  let got!: (info: ConnectionInitInfo) => void;
  const captured = new Promise<ConnectionInitInfo>((r) => (got = r));
  const decoder = new HandshakeDecoder({ accept: [1] });
  let done = false;
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: readFileSync(c.server.cert, "utf8"), key: readFileSync(c.server.key, "utf8") },
    socket: {
      data(_s, d) {
        if (done) return;
        const r = decoder.push(d);
        if (r.kind === "frame" && r.message.flag === 1) {
          done = true;
          got(r.message.body);
        }
      },
    },
  });
  return { port: l.port, captured, stop: () => l.stop(true) };
}

test("an InitInfo captured by a rogue TLS server is refused (status 2) when replayed to another server at once", async () => {
  const victimServer = await server({ ...serverTlsEnv(), TUNNEL_CLUSTERS: `edge=hmac-sha256:${SECRET}`, TUNNEL_ROUTES: "" });
  const rogue = captureServer();
  try {
    const a = await startAgent(agentConfig({ ...agentEnv(), TUNNEL_SERVERS: `127.0.0.1:${rogue.port}` }));
    agents.push(a);
    const info = await rogue.captured;
    expect(info.credential).toMatch(/^v2\./);
    const ca = readFileSync(testCerts().ca.cert, "utf8");
    let status: number | undefined;
    await rawAgent(victimServer.agentPort, info, { tls: { ca, serverName: "localhost" } }).then(
      (r) => ((status = HandshakeStatus.SUCCESS), r.socket.end()),
      (e: { status?: number }) => (status = e.status),
    );
    expect(status).toBe(HandshakeStatus.AUTH_FAILED);
    expect([...victimServer.registry.hosts()]).toHaveLength(0);
  } finally {
    rogue.stop();
  }
});

test("a real hmac-sha256 agent over TLS joins and carries traffic byte-exact", async () => {
  const srv = await server({ ...serverTlsEnv(), TUNNEL_CLUSTERS: `edge=hmac-sha256:${SECRET}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  await agent(srv, agentEnv());
  const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 3, sendBytes: 256 * 1024 });
  expect(r.ok).toBe(true);
});
