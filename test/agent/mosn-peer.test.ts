/**
 * Our agent as a MOSN agent (TUNNEL_PROTOCOL=mosn, a real process) against a MOSN tunnel server written in the test
 * (test/support/mosn-server.ts): the InitInfo checked byte by byte, visitors of the server's frontend port echoed
 * byte-exact through the spliced connections, redial when the server closes one, and on SIGTERM a GracefulClose
 * naming exactly the data connections' local addresses.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { sourceCommand, spawnRole, type RoleProcess } from "../../scripts/lib/roles.ts";
import { startMosnServer, type MosnServer } from "../support/mosn-server.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { startAgent } from "../../src/agent/agent.ts";

const SECRET = "mosn-secret-0123456789";
const KiB = 1024;
const echo = startEchoServer();
const procs: RoleProcess[] = [];
const fakes: MosnServer[] = [];
afterAll(() => echo.stop());
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop(1_000)));
  for (const f of fakes.splice(0)) f.stop();
  await stopAll();
});

function mosnAgentProcess(srv: MosnServer, extra: Record<string, string> = {}): RoleProcess {
  const p = spawnRole(sourceCommand("agent"), {
    TUNNEL_TLS: "off",
    TUNNEL_PROTOCOL: "mosn",
    TUNNEL_SERVERS: `127.0.0.1:${srv.tunnelPort}`,
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "gw-01",
    TUNNEL_CREDENTIAL: SECRET,
    TUNNEL_SERVICES: `app=127.0.0.1:${echo.port}`,
    TUNNEL_CONNECTIONS: "2",
    TUNNEL_RECONNECT_BASE_MS: "20",
    TUNNEL_RECONNECT_MAX_MS: "200",
    TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: "1500",
    ...extra,
  });
  procs.push(p);
  return p;
}

function fake(): MosnServer {
  const f = startMosnServer();
  fakes.push(f);
  return f;
}

test("InitInfo byte by byte, then byte-exact echoes through the spliced connections", async () => {
  const srv = fake();
  mosnAgentProcess(srv);
  await waitFor(() => srv.idleCount() === 2, "two host connections", 10_000);
  const json = `{"cluster_name":"edge","weight":10,"host_name":"gw-01","credential_policy":"token","credential":"${SECRET}","extra":null}`;
  for (const init of srv.inits) {
    // magic 20 88, version 01, flag 01 (InitInfo), type 01 00 (request), uint16 big-endian length
    expect(init.header.slice(0, 6)).toEqual([0x20, 0x88, 0x01, 0x01, 0x01, 0x00]);
    expect((init.header[6] as number) * 256 + (init.header[7] as number)).toBe(json.length);
    expect(init.json).toBe(json); // Go's field order, compact, extra null
  }
  for (let i = 0; i < 6; i++) {
    await waitFor(() => srv.idleCount() >= 1, "an idle host connection");
    const r = await runVisitor({ port: srv.frontendPort, seed: 3100 + i, sendBytes: 256 * KiB });
    expect(r).toMatchObject({ ok: true, sent: 256 * KiB, received: 256 * KiB, error: null });
  }
  await waitFor(() => srv.idleCount() === 2, "both connections back");
  const both = await Promise.all([0, 1].map((i) => runVisitor({ port: srv.frontendPort, seed: 3200 + i, sendBytes: 256 * KiB })));
  for (const r of both) expect(r).toMatchObject({ ok: true, received: 256 * KiB, error: null });
  // Every visitor used up a connection and the agent dialled a new one for it.
  await waitFor(() => srv.inits.length >= 2 + 8 && srv.idleCount() === 2, "redials after the visitors");
});

test("the server closing an idle connection makes the agent dial a new one", async () => {
  const srv = fake();
  mosnAgentProcess(srv);
  await waitFor(() => srv.idleCount() === 2, "two host connections", 10_000);
  const closed = srv.closeOneIdle();
  expect(closed).not.toBeNull();
  await waitFor(() => srv.inits.length === 3 && srv.idleCount() === 2, "a third InitInfo");
  expect(srv.hostAddresses()).not.toContain(closed);
  const r = await runVisitor({ port: srv.frontendPort, seed: 3300, sendBytes: 64 * KiB });
  expect(r.ok).toBe(true);
});

test("SIGTERM sends a GracefulClose naming exactly its data connections' local addresses, then exits", async () => {
  const srv = fake();
  const p = mosnAgentProcess(srv);
  await waitFor(() => srv.idleCount() === 2, "two host connections", 10_000);
  const data = srv.hostAddresses().sort();
  expect(data).toHaveLength(2);
  const started = performance.now();
  p.proc.kill("SIGTERM");
  await waitFor(() => srv.gracefulCloses.length === 1, "the GracefulClose");
  const gc = srv.gracefulCloses[0];
  expect(gc?.header.slice(0, 6)).toEqual([0x20, 0x88, 0x01, 0x03, 0x01, 0x00]);
  expect(gc?.body.cluster_name).toBe("edge");
  expect([...(gc?.body.addresses ?? [])].sort()).toEqual(data);
  // Sent on the aside connection, which is none of the data connections.
  expect(data).not.toContain(gc?.remote);
  // A MOSN server closes nothing: the agent waits out TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS and exits cleanly.
  expect(await p.proc.exited).toBe(0);
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(srv.inits).toHaveLength(2); // no redial while stopping
});

test("both ways: our agent with TUNNEL_PROTOCOL=mosn on our server with TUNNEL_MOSN_AGENTS=on; a graceful stop ends once the server closed the retired connections", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/web", TUNNEL_MOSN_AGENTS: "on" });
  const a = await agent(srv, { TUNNEL_PROTOCOL: "mosn", TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: SECRET, TUNNEL_SERVICES: `web=127.0.0.1:${echo.port}`, TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: "10000" });
  const idle = () => [...srv.registry.rawHosts()].filter((r) => r.idle).length;
  await waitFor(() => idle() === 2, "two raw hosts");
  expect([...srv.registry.rawHosts()].map((r) => r.hostName)).toEqual(["edge-1", "edge-1"]);
  for (let i = 0; i < 3; i++) {
    await waitFor(() => idle() >= 1, "an idle raw host");
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 3400 + i, sendBytes: 256 * KiB });
    expect(r).toMatchObject({ ok: true, received: 256 * KiB, error: null });
  }
  await waitFor(() => idle() === 2, "both back");
  const started = performance.now();
  await a.close(true);
  expect(performance.now() - started).toBeLessThan(5_000);
  await waitFor(() => [...srv.registry.rawHosts()].length === 0, "the raw hosts to be gone");
});

test("a refused handshake backs off and retries (MOSN's slot would die)", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/web", TUNNEL_MOSN_AGENTS: "on", TUNNEL_AUTH_FAILURE_LIMIT: "0" });
  const config = agentConfig({ TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_PROTOCOL: "mosn", TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: "wrong-secret-0123456789", TUNNEL_SERVICES: `web=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", TUNNEL_RECONNECT_MAX_MS: "100" });
  const a = await startAgent(config);
  try {
    await waitFor(() => (a.stats.handshakes.get(2) ?? 0) >= 3, "three refusals");
    expect(a.slots[0]?.lastStatus).toBe(2);
    expect([...srv.registry.rawHosts()]).toHaveLength(0);
  } finally {
    await a.close(false);
  }
});
