/**
 * Agent shutdown: SIGTERM to an agent process in the middle of a transfer drains it (DRAIN over the aside
 * connection, GOAWAY on data connections): the transfer completes byte-exact, new visitors go to the other agent,
 * and the agent exits as soon as its last stream is done.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { sourceCommand, spawnRole, type RoleProcess } from "../../scripts/lib/roles.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { server, stopAll } from "../support/tunnel.ts";

const echoA = startEchoServer();
const echoB = startEchoServer();
const procs: RoleProcess[] = [];
afterAll(() => {
  echoA.stop();
  echoB.stop();
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop(1_000)));
  await stopAll();
});

function agentProcess(agentPort: number, hostname: string, echoPort: number): RoleProcess {
  const p = spawnRole(sourceCommand("agent"), {
    TUNNEL_TLS: "off",
    TUNNEL_SERVERS: `127.0.0.1:${agentPort}`,
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: hostname,
    TUNNEL_SERVICES: `echo=127.0.0.1:${echoPort}`,
    TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: "30000",
  });
  procs.push(p);
  return p;
}

test("SIGTERM mid 64 MiB transfer: it completes byte-exact, new visitors go elsewhere, the agent exits within 1 s after", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const port = srv.routePorts[0] as number;
  const a = agentProcess(srv.agentPort, "agent-a", echoA.port);
  await waitFor(() => [...srv.registry.hosts()].filter((h) => h.hostName === "agent-a").length === 2, "agent A connected", 10_000);

  let received = 0;
  const transfer = runVisitor({ port, seed: 64, sendBytes: 64 * 1024 * 1024, chunkBytes: 256 * 1024, onData: (d) => (received += d.byteLength) });
  await waitFor(() => received > 4 * 1024 * 1024, "transfer under way", 10_000);
  const b = agentProcess(srv.agentPort, "agent-b", echoB.port);
  await waitFor(() => [...srv.registry.hosts()].filter((h) => h.hostName === "agent-b").length === 2, "agent B connected", 10_000);

  const acceptedByA = echoA.accepted;
  a.proc.kill("SIGTERM");
  await waitFor(() => [...srv.registry.hosts()].filter((h) => h.hostName === "agent-a").every((h) => h.session.draining), "A drained at the server");
  const during = await Promise.all(Array.from({ length: 20 }, (_, i) => runVisitor({ port, seed: 300 + i, sendBytes: 10_000 })));
  for (const r of during) expect(r.ok).toBe(true);
  expect(echoA.accepted).toBe(acceptedByA); // nothing new reached agent A

  const r = await transfer;
  const endedAt = performance.now();
  expect(r.error).toBeNull();
  expect(r.ok).toBe(true);
  const code = await a.proc.exited;
  const exitAfterMs = performance.now() - endedAt;
  console.log(`agent exited ${exitAfterMs.toFixed(0)} ms after the transfer ended (code ${code})`);
  expect(code).toBe(0);
  expect(exitAfterMs).toBeLessThan(1_000);
  expect(b.proc.exitCode).toBeNull();
}, 60_000);

test("a second SIGTERM exits at once", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const a = agentProcess(srv.agentPort, "agent-a", echoA.port);
  await waitFor(() => srv.registry.byId.size === 2, "agent connected", 10_000);
  // A stalled visitor keeps a stream open, so a graceful stop would wait.
  const accepted = echoA.accepted;
  const slow = await Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[0] as number, socket: { data() {} } });
  await waitFor(() => echoA.accepted > accepted, "stream open through to the target");
  a.proc.kill("SIGTERM");
  await waitFor(() => [...srv.registry.hosts()].every((h) => h.session.draining), "draining");
  expect(a.proc.exitCode).toBeNull();
  a.proc.kill("SIGTERM");
  expect(await a.proc.exited).not.toBe(0);
  slow.terminate();
}, 30_000);

test("SIGTERM to a server: it stops taking visitors, in-flight streams finish byte-exact, then it exits", async () => {
  const { startServerProcess } = await import("../../scripts/lib/roles.ts");
  const { startAgent } = await import("../../src/agent/agent.ts");
  const { agentConfig } = await import("../support/tunnel.ts");
  const srv = await startServerProcess(sourceCommand("server"), {
    TUNNEL_TLS: "off",
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_SHUTDOWN_GRACE_MS: "30000",
  });
  procs.push(srv.role);
  const a = await startAgent(agentConfig({ TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echoA.port}` }));
  try {
    await a.ready();
    const port = srv.routePorts[0] as number;
    let received = 0;
    const transfer = runVisitor({ port, seed: 65, sendBytes: 32 * 1024 * 1024, chunkBytes: 256 * 1024, onData: (d) => (received += d.byteLength) });
    await waitFor(() => received > 2 * 1024 * 1024, "transfer under way", 10_000);
    srv.role.proc.kill("SIGTERM");
    await srv.role.waitForLog((l) => l.msg === "shutting down");
    // New visitors are not accepted any more (the route listener closes first thing).
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await runVisitor({ port, seed: 66, sendBytes: 10 }).then(() => false, () => true);
    }
    expect(refused).toBe(true);
    const r = await transfer;
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
    expect(await srv.role.proc.exited).toBe(0);
  } finally {
    await a.close(false);
  }
}, 60_000);
