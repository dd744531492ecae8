/**
 * /metrics: the registry's text format (parsed strictly, test/admin/prom.ts), then both roles scraped after known
 * traffic, with exact counter values.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { MetricsRegistry } from "../../src/admin/metrics.ts";
import { Histogram } from "../../src/stats/histogram.ts";
import { encodeHandshake } from "../../src/protocol/handshake.ts";
import { FORGET_AGENT_MS, ServerStats } from "../../src/server/stats.ts";
import { AgentStats } from "../../src/agent/stats.ts";
import type { Host } from "../../src/server/registry.ts";
import type { Stream } from "../../src/mux/stream.ts";
import { runVisitor, startCountingServer, startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { parseProm, sampleValue, type PromFamily } from "./prom.ts";

const echo = startEchoServer();
afterAll(() => echo.stop());
afterEach(stopAll);

async function scrape(port: number | null): Promise<Map<string, PromFamily>> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parseProm(await r.text());
}

describe("registry", () => {
  test("counters, gauges and histograms render as strictly valid exposition text, escaped", () => {
    const h = new Histogram([0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);
    const text = new MetricsRegistry()
      .counter("t_requests_total", "Requests.\nSecond line \\ backslash.", () => [[{ path: 'a"b\\c\nd' }, 3]])
      .gauge("t_temperature", "A gauge.", () => [[{}, -1.5], [{ room: "x" }, NaN]])
      .histogram("t_latency_seconds", "A histogram.", () => [[{ route: "r" }, h]])
      .render();
    expect(text).toContain('t_requests_total{path="a\\"b\\\\c\\nd"} 3\n');
    expect(text).toContain("# HELP t_requests_total Requests.\\nSecond line \\\\ backslash.\n");
    const fams = parseProm(text);
    expect(sampleValue(fams, "t_requests_total", { path: 'a"b\\c\nd' })).toBe(3);
    expect(sampleValue(fams, "t_temperature")).toBe(-1.5);
    expect(sampleValue(fams, "t_latency_seconds_bucket", { route: "r", le: "0.1" })).toBe(2); // le is inclusive
    expect(sampleValue(fams, "t_latency_seconds_bucket", { route: "r", le: "1" })).toBe(3);
    expect(sampleValue(fams, "t_latency_seconds_bucket", { route: "r", le: "+Inf" })).toBe(4);
    expect(sampleValue(fams, "t_latency_seconds_count", { route: "r" })).toBe(4);
    expect(sampleValue(fams, "t_latency_seconds_sum", { route: "r" })).toBeCloseTo(3.65, 10);
  });

  test("names are checked when registered; the parser refuses what a scraper would", () => {
    expect(() => new MetricsRegistry().counter("t_requests", "no _total", () => [])).toThrow();
    expect(() => new MetricsRegistry().gauge("1bad", "bad name", () => [])).toThrow();
    expect(() => new MetricsRegistry().gauge("t_a", "", () => []).gauge("t_a", "", () => [])).toThrow();
    expect(() => new MetricsRegistry().gauge("t_a", "", () => [[{ "bad-label": "x" }, 1]]).render()).toThrow();
    expect(() => new Histogram([1, 1])).toThrow();
    expect(() => parseProm("t_x 1\n")).toThrow(/no # TYPE/);
    expect(() => parseProm("# TYPE t_x gauge\nt_x{a=\"1\",a=\"2\"} 1\n")).toThrow(/twice/);
    expect(() => parseProm("# TYPE t_x gauge\nt_x 1\nt_x 2\n")).toThrow(/twice/);
    expect(() => parseProm("# TYPE t_h histogram\nt_h_bucket{le=\"1\"} 2\nt_h_bucket{le=\"+Inf\"} 1\nt_h_sum 1\nt_h_count 1\n"))
      .toThrow(/cumulative/);
    expect(() => parseProm("# TYPE t_h histogram\nt_h_bucket{le=\"1\"} 1\nt_h_sum 1\nt_h_count 1\n")).toThrow(/\+Inf/);
  });
});

describe("stats bounds", () => {
  const host = (hostName: string) => ({ cluster: "edge", hostName }) as Host;
  const stream = (label: string) => ({ label, bytesIn: 1, bytesOut: 2, open: { service: "s" } }) as unknown as Stream;

  test("reset codes outside SPEC.md §5.2 share one UNKNOWN entry on both roles", () => {
    const server = new ServerStats();
    const agentStats = new AgentStats();
    for (const code of [7, 99, 1000, 2 ** 32 - 1]) {
      server.streamEnded(stream("edge/web"), code, host("a"), false);
      agentStats.streamEnded(stream("web"), code);
    }
    expect([...server.resetsByRouteCode]).toEqual([["edge/web\u0000CANCEL", 1], ["edge/web\u0000UNKNOWN", 3]]);
    expect([...server.resetsByCode]).toEqual([[7, 1], [-1, 3]]);
    expect([...agentStats.resets]).toEqual([["web\u0000CANCEL", 1], ["web\u0000UNKNOWN", 3]]);
  });

  test("an agent gone for FORGET_AGENT_MS loses its per-agent counters; one still connected keeps them", () => {
    const s = new ServerStats();
    const [a1, a2, b] = [host("a"), host("a"), host("b")];
    for (const h of [a1, a2, b]) {
      s.hostJoined(h, 0);
      s.rtt(h, 1);
    }
    s.streamEnded(stream("edge/web"), null, a1, false);
    s.streamEnded(stream("edge/web"), null, b, false);
    s.hostLeft(a1, 1_000); // a still has a2
    s.hostLeft(b, 1_000);
    s.hostJoined(host("c"), 1_000 + FORGET_AGENT_MS - 1);
    expect([...s.endedByRouteAgent.keys()].sort()).toEqual(["edge/web\u0000a", "edge/web\u0000b"]);
    s.hostJoined(host("c"), 1_000 + FORGET_AGENT_MS);
    expect([...s.endedByRouteAgent.keys()]).toEqual(["edge/web\u0000a"]);
    expect([...s.rttSeconds.keys()]).toEqual(["edge\u0000a"]);
  });
});

/** Opens a visitor that stays connected; resolves once `bytes` came back. */
async function openVisitor(port: number, bytes: number): Promise<{ socket: Socket<undefined>; closed: Promise<void> }> {
  let got = 0;
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        got += d.byteLength;
      },
      close() {
        closed();
      },
    },
  });
  socket.write(new Uint8Array(bytes).fill(7));
  await waitFor(() => got === bytes, "the echo of the open visitor");
  return { socket, closed: done };
}

/** One handshake for a cluster the server does not have: answered CLUSTER_NOT_EXIST, then closed. */
async function foreignHandshake(port: number): Promise<void> {
  const hello = { version: 1, role: "data", slot: 0, instance: "probe", window: 65536, max_frame: 16384 };
  const frame = encodeHandshake({
    flag: 1,
    body: { cluster_name: "nope", weight: 10, host_name: "probe", credential_policy: "none", credential: "", extra: { backchannel: hello } },
  });
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => closed() } });
  s.write(frame);
  await done;
}

test("by default the server's series are per cluster and route: no agent label, the same totals", async () => {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_HEARTBEAT_INTERVAL_MS: "20",
    TUNNEL_HEARTBEAT_TIMEOUT_MS: "5000",
  });
  for (const name of ["edge-1", "edge-2"]) {
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: name, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_HEARTBEAT_INTERVAL_MS: "20" });
  }
  for (let i = 0; i < 4; i++) expect((await runVisitor({ port: srv.routePorts[0] as number, seed: i, sendBytes: 1000 })).ok).toBe(true);
  await waitFor(() => srv.stats.streamsActive === 0 && srv.stats.rttSeconds.size > 0, "streams to end and a round trip");
  const s = await scrape(srv.adminPort);
  for (const [name, family] of s) {
    if (!name.startsWith("backchannel_server_")) continue;
    for (const sample of family.samples) expect(Object.keys(sample.labels)).not.toContain("agent");
  }
  expect(sampleValue(s, "backchannel_server_agents", { cluster: "edge" })).toBe(2);
  expect(sampleValue(s, "backchannel_server_connections", { cluster: "edge", state: "ready" })).toBe(4);
  expect(sampleValue(s, "backchannel_server_streams_total", { cluster: "edge", service: "echo" })).toBe(4);
  expect(sampleValue(s, "backchannel_server_stream_bytes_total", { cluster: "edge", service: "echo", direction: "upstream" })).toBe(4000);
  expect(sampleValue(s, "backchannel_server_heartbeat_rtt_seconds_count", { cluster: "edge" })).toBeGreaterThan(0);
  expect(sampleValue(s, "backchannel_server_limit_hits_total", { limit: "connections" })).toBe(0);
});

test("after known traffic both roles report exact counters, and open streams live", async () => {
  const dead = startCountingServer();
  const deadPort = dead.port;
  dead.stop();
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none,empty=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo,127.0.0.1:0=edge/nosuch,127.0.0.1:0=edge/refused,127.0.0.1:0=empty/echo",
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_HEARTBEAT_INTERVAL_MS: "20",
    TUNNEL_HEARTBEAT_TIMEOUT_MS: "5000",
    TUNNEL_METRICS_PER_AGENT: "on",
  });
  const a = await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "edge-1",
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port},refused=127.0.0.1:${deadPort}`,
    TUNNEL_ADMIN_LISTEN: "127.0.0.1:0",
    TUNNEL_HEARTBEAT_INTERVAL_MS: "20",
    TUNNEL_HEARTBEAT_TIMEOUT_MS: "5000",
  });
  const [echoPort, nosuchPort, refusedPort, emptyPort] = srv.routePorts as [number, number, number, number];
  const sizes = [1000, 20_000, 300_000];
  for (const [i, n] of sizes.entries()) expect((await runVisitor({ port: echoPort, seed: i, sendBytes: n })).ok).toBe(true);
  for (const port of [nosuchPort, refusedPort, emptyPort, emptyPort]) await runVisitor({ port, seed: 9, sendBytes: 10, expectBytes: 0 });
  await foreignHandshake(srv.agentPort);
  await waitFor(() => srv.stats.streamsActive === 0 && a.stats.openStreams.size === 0, "streams to end");
  const open = await openVisitor(echoPort, 4096);
  await waitFor(() => srv.stats.rttSeconds.size > 0 && a.stats.rttSeconds.size > 0, "a heartbeat round trip on both sides");

  const s = await scrape(srv.adminPort);
  const up = sizes.reduce((x, y) => x + y, 0) + 4096;
  const route = { cluster: "edge", service: "echo", agent: "edge-1" };
  expect(s.get("backchannel_build_info")?.samples[0]?.labels.mode).toBe("server");
  expect(sampleValue(s, "backchannel_server_agents", { cluster: "edge" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_agents", { cluster: "empty" })).toBe(0);
  expect(sampleValue(s, "backchannel_server_connections", { cluster: "edge", agent: "edge-1", state: "ready" })).toBe(2);
  expect(sampleValue(s, "backchannel_server_connections", { cluster: "edge", agent: "edge-1", state: "draining" })).toBe(0);
  expect(sampleValue(s, "backchannel_server_handshakes_total", { status: "success" })).toBe(3); // 2 data + 1 aside
  expect(sampleValue(s, "backchannel_server_handshakes_total", { status: "cluster_not_exist" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_streams_open", route)).toBe(1);
  expect(sampleValue(s, "backchannel_server_streams_total", route)).toBe(4);
  expect(sampleValue(s, "backchannel_server_streams_total", { ...route, service: "nosuch" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_streams_total", { ...route, service: "refused" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_stream_bytes_total", { ...route, direction: "upstream" })).toBe(up);
  expect(sampleValue(s, "backchannel_server_stream_bytes_total", { ...route, direction: "downstream" })).toBe(up);
  expect(sampleValue(s, "backchannel_server_stream_open_seconds_count", { cluster: "edge", service: "echo" })).toBe(4);
  expect(sampleValue(s, "backchannel_server_stream_open_seconds_count", { cluster: "edge", service: "nosuch" })).toBeUndefined();
  expect(sampleValue(s, "backchannel_server_heartbeat_rtt_seconds_count", { cluster: "edge", agent: "edge-1" })).toBeGreaterThan(0);
  expect(sampleValue(s, "backchannel_server_stream_resets_total", { cluster: "edge", service: "nosuch", code: "UNKNOWN_SERVICE" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_stream_resets_total", { cluster: "edge", service: "refused", code: "CONNECT_REFUSED" })).toBe(1);
  expect(sampleValue(s, "backchannel_server_visitors_refused_total", { cluster: "empty", service: "echo" })).toBe(2);
  expect(sampleValue(s, "backchannel_server_visitors_refused_total", { cluster: "edge", service: "echo" })).toBe(0);
  expect(sampleValue(s, "backchannel_server_limit_hits_total", { limit: "pending_handshakes" })).toBe(0);

  const g = await scrape(a.adminPort);
  const svc = { cluster: "edge", service: "echo" };
  const serverKey = `127.0.0.1:${srv.agentPort}`;
  expect(sampleValue(g, "backchannel_agent_info", { cluster: "edge", agent: "edge-1" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_servers")).toBe(1);
  expect(sampleValue(g, "backchannel_agent_connections", { server: serverKey, state: "ready" })).toBe(2);
  expect(sampleValue(g, "backchannel_agent_connections", { server: serverKey, state: "backoff" })).toBe(0);
  expect(sampleValue(g, "backchannel_agent_handshakes_total", { status: "success" })).toBe(3);
  expect(sampleValue(g, "backchannel_agent_reconnects_total", { server: serverKey })).toBe(0);
  expect(sampleValue(g, "backchannel_agent_streams_open", svc)).toBe(1);
  expect(sampleValue(g, "backchannel_agent_streams_total", svc)).toBe(4);
  expect(sampleValue(g, "backchannel_agent_streams_total", { ...svc, service: "refused" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_stream_bytes_total", { ...svc, direction: "upstream" })).toBe(up);
  expect(sampleValue(g, "backchannel_agent_stream_bytes_total", { ...svc, direction: "downstream" })).toBe(up);
  expect(sampleValue(g, "backchannel_agent_stream_resets_total", { ...svc, service: "refused", code: "CONNECT_REFUSED" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_stream_resets_total", { ...svc, service: "", code: "UNKNOWN_SERVICE" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_streams_refused_total", { reason: "unknown_service" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_streams_refused_total", { reason: "dial_failed" })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_heartbeat_rtt_seconds_count", { server: serverKey })).toBeGreaterThan(0);

  // The open stream ends: it moves from open to ended, and the totals stay where they were.
  open.socket.end();
  await open.closed;
  await waitFor(() => srv.stats.streamsActive === 0 && a.stats.openStreams.size === 0, "the open stream to end");
  const after = await scrape(srv.adminPort);
  expect(sampleValue(after, "backchannel_server_streams_open", route)).toBeUndefined();
  expect(sampleValue(after, "backchannel_server_streams_total", route)).toBe(4);
  expect(sampleValue(after, "backchannel_server_stream_bytes_total", { ...route, direction: "upstream" })).toBe(up);
  const agentAfter = await scrape(a.adminPort);
  expect(sampleValue(agentAfter, "backchannel_agent_streams_open", svc)).toBe(0);
  expect(sampleValue(agentAfter, "backchannel_agent_streams_total", svc)).toBe(4);
}, 30_000);

test("a reconnect is counted by server", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ADMIN_LISTEN: "0" });
  const a = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", TUNNEL_ADMIN_LISTEN: "0" });
  const [host] = [...srv.registry.hosts()];
  host?.session.close();
  await waitFor(() => a.slots[0]?.reconnects === 1 && a.slots[0]?.state === "ready", "the slot to reconnect");
  const g = await scrape(a.adminPort);
  expect(sampleValue(g, "backchannel_agent_reconnects_total", { server: `127.0.0.1:${srv.agentPort}` })).toBe(1);
  expect(sampleValue(g, "backchannel_agent_handshakes_total", { status: "success" })).toBe(3);
}, 15_000);
