/**
 * The agent dials only TUNNEL_SERVICES, whatever the server sends (reliability.md S11), and enforces its own stream
 * cap. A fake server (test/support/security-net.ts) completes the handshake with a real agent, then sends OPEN
 * frames built by hand, including service names no encoder would write (`127.0.0.1:22`). A counting listener that
 * is not in TUNNEL_SERVICES must see no connection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { WireCode } from "../../src/protocol/constants.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { startCountingServer, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { heldVisitor, openFrame, pingFrame, startFakeServer, type FakeServer } from "../support/security-net.ts";

let echo: TestServer;
let counting: TestServer;
let fake: FakeServer | null = null;
const agents: AgentHandle[] = [];

beforeAll(() => {
  echo = startEchoServer();
  counting = startCountingServer();
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  fake?.stop();
  fake = null;
});
afterAll(() => {
  echo.stop();
  counting.stop();
});

async function agentOnFake(env: Record<string, string> = {}): Promise<AgentHandle> {
  fake = startFakeServer();
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${fake.port}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CONNECTIONS: "1",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
      ...env,
    }),
  );
  agents.push(a);
  return a;
}

const PONG = 0x07;
const ACK = 0x02;

describe("the agent never dials outside TUNNEL_SERVICES", () => {
  test("unlisted names, address-like names without ':': RST UNKNOWN_SERVICE, nothing dialled, connection kept", async () => {
    const a = await agentOnFake();
    const conn = await (fake as FakeServer).data();
    const names = ["ssh", "169.254.169.254", "127.0.0.1", "localhost", String(counting.port), `counting-${counting.port}`, "ECHO", "echo.", "..", "-"];
    names.forEach((name, i) => conn.send(openFrame(i + 1, name)));
    await waitFor(() => conn.reader.resets().size === names.length, "a reset per OPEN");
    for (const [, code] of conn.reader.resets()) expect(code).toBe(WireCode.UNKNOWN_SERVICE);
    expect(a.services.unknownServiceCount).toBe(names.length);
    // The connection is kept: it answers a PING, and a listed service still works on it.
    conn.send(pingFrame(7));
    conn.send(openFrame(names.length + 1, "echo"));
    await waitFor(() => conn.reader.ofType(PONG).length >= 1 && conn.reader.ofType(ACK).length === 1, "PONG and ACK");
    expect(conn.closed).toBe(false);
    expect(echo.accepted).toBeGreaterThanOrEqual(1);
    expect(counting.accepted).toBe(0);
  });

  test("names that look like host:port (not encodable): the agent's decoder rejects, the connection is reset, nothing dialled", async () => {
    for (const name of [`127.0.0.1:${counting.port}`, `localhost:${counting.port}`, "127.0.0.1:22", "169.254.169.254:80", "[::1]:22", "a/b", "x y"]) {
      const a = await agentOnFake();
      const conn = await (fake as FakeServer).data();
      conn.send(openFrame(1, name));
      // ERR_FRAME_PAYLOAD is fatal: GOAWAY PROTOCOL_ERROR, then the agent closes this connection (and redials).
      await waitFor(() => conn.closed, `the connection closed after OPEN ${name}`);
      const goaway = conn.reader.ofType(0x08)[0];
      expect(goaway).toBeDefined();
      expect(new DataView(goaway!.payload.buffer, goaway!.payload.byteOffset).getUint32(4)).toBe(WireCode.PROTOCOL_ERROR);
      expect(conn.reader.ofType(ACK).length).toBe(0);
      expect(a.services.unknownServiceCount).toBe(0);
      await Promise.all(agents.splice(0).map((x) => x.close(false)));
      fake?.stop();
      fake = null;
    }
    expect(counting.accepted).toBe(0);
  });

  test("a real server routed to an unlisted service: the visitor is closed, nothing dialled", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/ssh,127.0.0.1:0=edge/echo" });
    const a = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const v = await heldVisitor(srv.routePorts[0] as number);
    expect(await v.roundTrip(10)).toBe(false);
    await waitFor(() => v.isClosed(), "the visitor closed");
    expect(a.services.unknownServiceCount).toBe(1);
    const ok = await heldVisitor(srv.routePorts[1] as number);
    expect(await ok.roundTrip(1000)).toBe(true);
    ok.close();
    expect(counting.accepted).toBe(0);
  });
});

describe("stream cap", () => {
  test("agent: OPENs beyond TUNNEL_MAX_STREAMS_PER_CONNECTION get REFUSED_STREAM; the connection and its streams stay", async () => {
    const a = await agentOnFake({ TUNNEL_MAX_STREAMS_PER_CONNECTION: "4" });
    const conn = await (fake as FakeServer).data();
    for (let id = 1; id <= 4; id++) conn.send(openFrame(id, "echo"));
    await waitFor(() => conn.reader.ofType(ACK).length === 4, "4 ACKs");
    for (let id = 5; id <= 50; id++) conn.send(openFrame(id, "echo"));
    await waitFor(() => conn.reader.resets().size === 46, "46 resets");
    for (const [id, code] of conn.reader.resets()) {
      expect(id).toBeGreaterThan(4);
      expect(code).toBe(WireCode.REFUSED_STREAM);
    }
    // The 4 open streams still carry data: DATA on stream 1 comes back from the echo target.
    const payload = new TextEncoder().encode("still here");
    const data = new Uint8Array(10 + payload.byteLength);
    data[0] = 0x00;
    new DataView(data.buffer).setUint32(2, 1);
    new DataView(data.buffer).setUint32(6, payload.byteLength);
    data.set(payload, 10);
    conn.send(data);
    await waitFor(() => conn.reader.frames.some((f) => f.type === 0x00 && f.streamId === 1 && new TextDecoder().decode(f.payload) === "still here"), "echoed DATA");
    expect(conn.closed).toBe(false);
    expect(echo.accepted).toBeGreaterThanOrEqual(4);
    expect(a.stats.refused).toEqual({ stream_limit: 46, inbound_budget: 0 });
  });

  test("server: never opens more than TUNNEL_MAX_STREAMS_PER_CONNECTION streams on a connection; excess visitors refused, the rest undisturbed", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", TUNNEL_MAX_STREAMS_PER_CONNECTION: "4" });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_CONNECTIONS: "1", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const port = srv.routePorts[0] as number;
    const held = await Promise.all([1, 2, 3, 4].map(() => heldVisitor(port)));
    for (const v of held) expect(await v.roundTrip(1000)).toBe(true);
    const excess = await Promise.all(Array.from({ length: 20 }, () => heldVisitor(port)));
    await waitFor(() => excess.every((v) => v.isClosed()), "every excess visitor closed");
    expect(srv.stats.refusedByRoute.get("edge/echo")).toBe(20);
    for (const v of held) {
      expect(v.isClosed()).toBe(false);
      expect(await v.roundTrip(64 * 1024)).toBe(true);
    }
    const hosts = [...srv.registry.hosts()];
    expect(hosts.length).toBe(1);
    expect(hosts[0]!.session.activeStreams).toBe(4);
    for (const v of held) v.close();
  });
});
