/**
 * Failover per visitor (SPEC §2.2 "Refusal before ACK"): a stream an agent turns down before taking any byte goes
 * on to another agent of the cluster, with the visitor's bytes replayed; every byte verified.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { runVisitor, startCountingServer, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

let echo: TestServer;
let deadPort = 0;
beforeAll(() => {
  echo = startEchoServer();
  const dead = startCountingServer();
  deadPort = dead.port;
  dead.stop(); // nothing listens there now: dials are refused
});
afterAll(() => echo.stop());
afterEach(stopAll);

const retried = (srv: Awaited<ReturnType<typeof server>>, code: string) => srv.stats.retriedByRouteCode.get(`edge/echo\u0000${code}`) ?? 0;

describe("failover per visitor", () => {
  test("an agent whose service refuses the dial: every visitor is carried by the other agent, byte-exact", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "broken", TUNNEL_SERVICES: `echo=127.0.0.1:${deadPort}` });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "healthy", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const port = srv.routePorts[0] as number;
    // 60 KiB each, sent at once and half-closed: the whole request (and the FIN) is usually in flight before the
    // refusal comes back, so the replay carries data and end of stream.
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => runVisitor({ port, seed: 500 + i, sendBytes: 60 * 1024 })));
    for (const r of results) {
      expect(r.error).toBeNull();
      expect(r.received).toBe(60 * 1024);
      expect(r.ok).toBe(true);
    }
    await waitFor(() => srv.stats.streamsActive === 0, "streams to finish");
    // Round robin sends about half of the visitors to the broken agent first; all of those were retried.
    expect(retried(srv, "CONNECT_REFUSED")).toBeGreaterThanOrEqual(10);
    expect(srv.stats.resetsByCode.get(9) ?? 0).toBe(0);
  }, 60_000);

  test("an agent without the service in its allowlist: the visitor goes to one that has it", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    const other = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "other", TUNNEL_SERVICES: `web=127.0.0.1:${echo.port}` });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "right", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const port = srv.routePorts[0] as number;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runVisitor({ port, seed: 900 + i, sendBytes: 1000 })));
    for (const r of results) expect(r.ok).toBe(true);
    expect(retried(srv, "UNKNOWN_SERVICE")).toBeGreaterThanOrEqual(5);
    expect(other.services.unknownServiceCount).toBeGreaterThanOrEqual(5);
  }, 60_000);

  test("an agent at its stream limit (REFUSED_STREAM): the visitor goes to another agent", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    const services = `echo=127.0.0.1:${echo.port}`;
    // Nearly every pick goes to "full" (weight 100 against 1); it takes one stream per connection.
    const full = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "full", TUNNEL_WEIGHT: "100", TUNNEL_CONNECTIONS: "1", TUNNEL_MAX_STREAMS_PER_CONNECTION: "1", TUNNEL_SERVICES: services });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "spare", TUNNEL_WEIGHT: "1", TUNNEL_SERVICES: services });
    const port = srv.routePorts[0] as number;
    // One visitor that stays open (no FIN) fills "full".
    const holder = runVisitor({ port, seed: 1, sendBytes: 10, halfClose: false });
    const fullStreams = () => full.slots.reduce((n, s) => n + (s.session?.activeStreams ?? 0), 0);
    await waitFor(() => fullStreams() === 1, "the holding stream on the full agent");
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => runVisitor({ port, seed: 100 + i, sendBytes: 30 * 1024 })));
    for (const r of results) {
      expect(r.error).toBeNull();
      expect(r.ok).toBe(true);
    }
    expect(retried(srv, "REFUSED_STREAM")).toBeGreaterThanOrEqual(9);
    expect(srv.stats.resetsByCode.get(6) ?? 0).toBe(0);
    await stopAll();
    await holder;
  }, 60_000);

  test("when every agent refuses, the visitor is reset after each was tried once", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    for (const name of ["a", "b"]) {
      await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: name, TUNNEL_SERVICES: `echo=127.0.0.1:${deadPort}` });
    }
    const port = srv.routePorts[0] as number;
    const r = await runVisitor({ port, seed: 7, sendBytes: 1000, expectBytes: 0 });
    expect(r.received).toBe(0);
    await waitFor(() => srv.stats.streamsActive === 0, "streams to finish");
    expect(retried(srv, "CONNECT_REFUSED")).toBe(1);
    expect(srv.stats.resetsByCode.get(9)).toBe(1);
    expect(srv.stats.streamsTotal).toBe(2);
  }, 60_000);
});
