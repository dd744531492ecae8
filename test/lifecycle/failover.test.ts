/**
 * Failures of a server or a link: SIGKILL and restart, a blackholed connection, one of two servers killed.
 * Servers that get killed run as real processes; agents run in-process so their state can be inspected.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { sourceCommand, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { startAgent } from "../../src/agent/agent.ts";
import { startFaultProxy } from "../support/fault-proxy.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agentConfig, server, stopAll } from "../support/tunnel.ts";

let echo: TestServer;
const procs: RoleProcess[] = [];
const agents: { close(g?: boolean): Promise<void> }[] = [];
beforeAll(() => {
  echo = startEchoServer();
});
afterAll(() => echo.stop());
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await Promise.all(procs.splice(0).map((p) => p.stop(1_000)));
  await stopAll();
});

const serverEnv = (listen: string, route: string) => ({
  TUNNEL_TLS: "off",
  TUNNEL_ACCESS_LOG: "off",
  TUNNEL_LISTEN: listen,
  TUNNEL_CLUSTERS: "edge=none",
  TUNNEL_ROUTES: `${route}=edge/echo`,
});

test("server SIGKILLed and restarted: the agent carries traffic again within 3 s of the server listening", async () => {
  const first = await startServerProcess(sourceCommand("server"), serverEnv("127.0.0.1:0", "127.0.0.1:0"));
  procs.push(first.role);
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${first.agentPort}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
      TUNNEL_RECONNECT_BASE_MS: "100",
      TUNNEL_RECONNECT_MAX_MS: "2000",
    }),
  );
  agents.push(a);
  await a.ready();
  const routePort = first.routePorts[0] as number;
  expect((await runVisitor({ port: routePort, seed: 1, sendBytes: 10_000 })).ok).toBe(true);

  first.role.proc.kill("SIGKILL");
  await first.role.proc.exited;
  await waitFor(() => a.slots.every((s) => s.state !== "ready"), "agent to notice the server is gone");
  // Let the agent's backoff grow a little while the server is down.
  await new Promise((r) => setTimeout(r, 1_000));

  const second = await startServerProcess(
    sourceCommand("server"),
    serverEnv(`127.0.0.1:${first.agentPort}`, `127.0.0.1:${routePort}`),
  );
  procs.push(second.role);
  const listeningAt = performance.now();
  let ok = false;
  while (!ok && performance.now() - listeningAt < 5_000) {
    const r = await runVisitor({ port: routePort, seed: 2, sendBytes: 10_000 });
    ok = r.ok;
    if (!ok) await new Promise((res) => setTimeout(res, 20));
  }
  const elapsed = performance.now() - listeningAt;
  console.log(`traffic again ${elapsed.toFixed(0)} ms after the restarted server listened`);
  expect(ok).toBe(true);
  expect(elapsed).toBeLessThan(3_000);
}, 30_000);

test("a blackholed connection (no FIN, no RST) is detected and replaced within the liveness timeout on both sides", async () => {
  const liveness = { TUNNEL_HEARTBEAT_INTERVAL_MS: "100", TUNNEL_HEARTBEAT_TIMEOUT_MS: "600" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", ...liveness });
  const proxy = startFaultProxy(srv.agentPort);
  try {
    const a = await startAgent(
      agentConfig({
        TUNNEL_SERVERS: `127.0.0.1:${proxy.port}`,
        TUNNEL_CLUSTER: "edge",
        TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
        TUNNEL_CONNECTIONS: "1",
        ...liveness,
      }),
    );
    agents.push(a);
    await a.ready();
    const before = [...srv.registry.hosts()].map((h) => h.connectionId);
    expect(before.length).toBe(1);
    const t0 = performance.now();
    for (const c of proxy.connections) c.blackhole();
    // Server side: the host is removed; agent side: the slot reconnects and the server sees a new host.
    await waitFor(() => !before.some((id) => srv.registry.byId.has(id)), "server to drop the dead host", 3_000);
    const serverDetectMs = performance.now() - t0;
    await waitFor(() => [...srv.registry.hosts()].some((h) => !before.includes(h.connectionId)), "replacement connection", 3_000);
    const replacedMs = performance.now() - t0;
    console.log(`blackhole: server dropped the host after ${serverDetectMs.toFixed(0)} ms, replaced after ${replacedMs.toFixed(0)} ms`);
    expect(serverDetectMs).toBeLessThan(600 + 100 + 500);
    expect(a.slots[0]?.reconnects).toBeGreaterThanOrEqual(1);
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 3, sendBytes: 100_000 });
    expect(r.ok).toBe(true);
  } finally {
    proxy.stop();
  }
}, 30_000);

test("two servers, one killed: streams through the other are untouched and new visitors there succeed", async () => {
  const s1 = await startServerProcess(sourceCommand("server"), serverEnv("127.0.0.1:0", "127.0.0.1:0"));
  const s2 = await startServerProcess(sourceCommand("server"), serverEnv("127.0.0.1:0", "127.0.0.1:0"));
  procs.push(s1.role, s2.role);
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${s1.agentPort},127.0.0.1:${s2.agentPort}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    }),
  );
  agents.push(a);
  await a.ready();
  const survivor = s2.routePorts[0] as number;
  const long = Array.from({ length: 4 }, (_, i) => runVisitor({ port: survivor, seed: 70 + i, sendBytes: 24 * 1024 * 1024 }));
  const doomed = runVisitor({ port: s1.routePorts[0] as number, seed: 80, sendBytes: 64 * 1024 * 1024 }).catch(() => ({ ok: false }));
  s1.role.proc.kill("SIGKILL");
  const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => runVisitor({ port: survivor, seed: 90 + i, sendBytes: 100_000 })));
  for (const r of fresh) expect(r).toMatchObject({ ok: true, error: null });
  for (const r of await Promise.all(long)) {
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
  }
  const d = await doomed;
  expect(d.ok).toBe(false); // its server died under it
}, 60_000);
