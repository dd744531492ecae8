/**
 * Retry policy: a refused credential is logged with its status and backs off near the maximum; a cluster that does
 * not exist (yet) keeps retrying at the normal pace; idle tunnels are never reaped for being idle.
 */
import { afterEach, expect, test } from "bun:test";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { configureLogging } from "../../src/log.ts";
import { waitFor } from "../support/net.ts";
import { agentConfig, server, stopAll } from "../support/tunnel.ts";

const agents: AgentHandle[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  configureLogging({ level: "error", format: "json" });
});

const SECRET = "the-right-secret-0123456789";

test("wrong credential: logged with status 2, retried near the maximum backoff, not hammered", async () => {
  const lines: string[] = [];
  configureLogging({ level: "info", format: "json", write: (l) => lines.push(l) });
  const srv = await server({ TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_AUTH_FAILURE_LIMIT: "0" });
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CREDENTIAL: "a-wrong-secret-0123456789",
      TUNNEL_CONNECTIONS: "1",
      TUNNEL_SERVICES: "x=127.0.0.1:9",
      TUNNEL_RECONNECT_BASE_MS: "20",
      TUNNEL_RECONNECT_MAX_MS: "1000",
    }),
  );
  agents.push(a);
  await waitFor(() => (srv.stats.handshakes.get(2) ?? 0) >= 2, "first refusals (data and aside)");
  const t0 = performance.now();
  const refusedAt0 = srv.stats.handshakes.get(2) ?? 0;
  await new Promise((r) => setTimeout(r, 1_000));
  const refusedIn1s = (srv.stats.handshakes.get(2) ?? 0) - refusedAt0;
  // With a 20 ms base a normal schedule would retry ~8 times a second per connection; near the 1 s cap it is ≤ 2.
  expect(refusedIn1s).toBeLessThanOrEqual(4);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(1_000);
  const refused = lines.map((l) => JSON.parse(l)).find((o) => o.msg === "handshake refused");
  expect(refused?.reason).toContain("status 2");
  expect(a.slots[0]?.state).not.toBe("ready");
  expect(a.slots[0]?.lastStatus).toBe(2);
}, 20_000);

test("a cluster that does not exist yet keeps being retried (status 4), at the normal pace", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "other=none", TUNNEL_AUTH_FAILURE_LIMIT: "0" });
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CONNECTIONS: "1",
      TUNNEL_SERVICES: "x=127.0.0.1:9",
      TUNNEL_RECONNECT_BASE_MS: "10",
      TUNNEL_RECONNECT_MAX_MS: "40",
    }),
  );
  agents.push(a);
  await waitFor(() => (srv.stats.handshakes.get(4) ?? 0) >= 20, "repeated attempts with status 4", 5_000);
  expect(a.slots[0]?.lastStatus).toBe(4);
}, 20_000);

test("idle tunnels are not reaped: heartbeats keep connections with no traffic alive across many timeouts", async () => {
  const liveness = { TUNNEL_HEARTBEAT_INTERVAL_MS: "50", TUNNEL_HEARTBEAT_TIMEOUT_MS: "200" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", ...liveness });
  const a = await startAgent(
    agentConfig({ TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "x=127.0.0.1:9", ...liveness }),
  );
  agents.push(a);
  await a.ready();
  const ids = [...srv.registry.hosts()].map((h) => h.connectionId).sort();
  await new Promise((r) => setTimeout(r, 1_500)); // 7 liveness timeouts with no stream at all
  expect([...srv.registry.hosts()].map((h) => h.connectionId).sort()).toEqual(ids);
  expect(a.slots.every((s) => s.reconnects === 0 && s.state === "ready")).toBe(true);
  expect(a.slots.every((s) => (s.session?.rttMs ?? -1) >= 0)).toBe(true);
}, 20_000);

test("two live agents with the same host name do not evict each other", async () => {
  const liveness = { TUNNEL_HEARTBEAT_INTERVAL_MS: "50", TUNNEL_HEARTBEAT_TIMEOUT_MS: "300" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", ...liveness });
  const env = { TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "x=127.0.0.1:9", TUNNEL_HOSTNAME: "clone", ...liveness };
  const a1 = await startAgent(agentConfig(env));
  agents.push(a1);
  await a1.ready();
  const a2 = await startAgent(agentConfig(env));
  agents.push(a2);
  await a2.ready();
  await new Promise((r) => setTimeout(r, 500)); // ten heartbeat intervals for any flapping to show
  expect(srv.registry.byId.size).toBe(4);
  for (const a of [a1, a2]) expect(a.slots.every((s) => s.reconnects === 0 && s.state === "ready")).toBe(true);
}, 20_000);
