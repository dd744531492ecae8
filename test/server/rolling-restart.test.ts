/**
 * Graceful restart without refusals (issue 19): with TUNNEL_REUSE_PORT=on a replacement server binds the agent
 * and route ports while the old one still runs (without it: ERR_LISTEN); a server shutting down gracefully keeps answering new
 * agent connections SERVER_BUSY with a retry time (counted as shutting_down) until it exits, and an agent whose
 * server was replaced comes back to the new one.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { startServer } from "../../src/server/server.ts";
import { isTunnelError } from "../../src/errors.ts";
import { heldVisitor } from "../support/security-net.ts";
import { startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, serverConfig, stopAll } from "../support/tunnel.ts";

const echo = startEchoServer();
afterAll(() => echo.stop());
afterEach(stopAll);

/** Bytes a fresh connection to `port` receives before the server closes it. */
async function answerOf(port: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s: Socket<undefined>, d) => void chunks.push(new Uint8Array(d)), close: () => closed() } });
  await done;
  return Buffer.concat(chunks);
}

test("TUNNEL_REUSE_PORT=on: a second server binds the same agent and route ports; without it the bind fails", async () => {
  const env = { TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" };
  const old = await server({ ...env, TUNNEL_REUSE_PORT: "on" });
  const next = await server({ ...env, TUNNEL_REUSE_PORT: "on", TUNNEL_LISTEN: `127.0.0.1:${old.agentPort}`, TUNNEL_ROUTES: `127.0.0.1:${old.routePorts[0]}=edge/echo` });
  expect(next.agentPort).toBe(old.agentPort);
  expect(next.routePorts[0]).toBe(old.routePorts[0] as number);
  const plain = await server(env);
  let err: unknown = null;
  try {
    await startServer(serverConfig({ ...env, TUNNEL_LISTEN: `127.0.0.1:${plain.agentPort}` }));
  } catch (e) {
    err = e;
  }
  expect(isTunnelError(err) && err.code === "ERR_LISTEN").toBe(true);
});

test("while a server drains it answers new agent connections SERVER_BUSY with a retry time; the agent moves to the replacement", async () => {
  const env = { TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", TUNNEL_REUSE_PORT: "on", TUNNEL_SHUTDOWN_GRACE_MS: "20000" };
  const old = await server(env);
  const a = await agent(old, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1" });
  const visitor = await heldVisitor(old.routePorts[0] as number); // keeps the old server in its grace period
  const closing = old.close(true);
  const busy = await answerOf(old.agentPort);
  expect([...busy.subarray(0, 4)]).toEqual([0x20, 0x88, 0x01, 0x02]); // a ConnectionInitResponse
  const body = JSON.parse(new TextDecoder().decode(busy.subarray(8))) as { status: number; retry_after_ms: number };
  expect(body.status).toBe(17);
  const retry = body.retry_after_ms;
  expect(retry).toBeGreaterThanOrEqual(250);
  expect(retry).toBeLessThan(5_000);
  expect(old.stats.limitHits.get("shutting_down")).toBeGreaterThanOrEqual(1);

  // The replacement binds the same port while the old one drains; the agent, told GOAWAY, registers there.
  const next = await server({ ...env, TUNNEL_LISTEN: `127.0.0.1:${old.agentPort}` });
  await waitFor(() => [...next.registry.hosts()].length >= 1, "the agent to join the replacement", 15_000);
  visitor.close();
  await closing;
  expect(a.closing).toBe(false);
});
