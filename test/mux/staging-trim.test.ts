/**
 * Memory that returns (issue 19): a connection that carried a 1 MiB stream gives back the staging memory the burst
 * grew, on both sides, once idle (FrameEncoder.trim on the heartbeat: src/mux/session-core.ts).
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import type { Session } from "../../src/mux/session.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const echo = startEchoServer();
afterAll(() => echo.stop());
afterEach(stopAll);

const INITIAL_STAGING_BYTES = 65_536;

test("after a 1 MiB stream every connection's staging returns to its initial size when idle", async () => {
  const beat = { TUNNEL_HEARTBEAT_INTERVAL_MS: "300", TUNNEL_HEARTBEAT_TIMEOUT_MS: "10000" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", ...beat });
  const a = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...beat });
  const sessions = (): Session[] => [
    ...[...srv.registry.hosts()].map((h) => h.session),
    ...a.slots.flatMap((s) => ("session" in s && s.session !== null ? [s.session] : [])),
  ];
  expect(sessions().length).toBe(2);
  expect(sessions().every((s) => s.stagingBytes === INITIAL_STAGING_BYTES)).toBe(true);
  let grown = 0;
  const watch = setInterval(() => (grown = Math.max(grown, ...sessions().map((s) => s.stagingBytes))), 1);
  const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 19, sendBytes: 1024 * 1024 });
  clearInterval(watch);
  grown = Math.max(grown, ...sessions().map((s) => s.stagingBytes));
  expect(r.ok).toBe(true); // byte-exact echo
  expect(grown).toBeGreaterThan(INITIAL_STAGING_BYTES); // the burst did grow a staging buffer
  await waitFor(() => sessions().every((s) => s.stagingBytes === INITIAL_STAGING_BYTES), "staging back to its initial size", 5_000);
});
