/**
 * UDP routes end to end (SPEC.md §2.5): datagrams whole and byte-exact both ways, per visitor address; oversized
 * datagrams dropped and counted; a service of the other protocol refused (PROTOCOL_MISMATCH), counted and logged once
 * per route; idle flows closed on both ends; an agent restart mid-flow; a service that never answers.
 */
import { afterEach, expect, test } from "bun:test";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { freePort, udpClient, udpEcho, udpSink, type UdpClient } from "../support/udp.ts";
import { Prng } from "../support/protocol-prng.ts";
import { MAX_DATAGRAM_BYTES, WireCode } from "../../src/protocol/constants.ts";
import { startAgent } from "../../src/agent/agent.ts";
import { agentConfig } from "../support/tunnel.ts";

afterEach(() => stopAll());

const EDGE = { TUNNEL_CLUSTER: "edge", TUNNEL_CONNECTIONS: "1" };

/** Sends `d` and waits for the next datagram back (or null after `ms`). */
async function roundTrip(c: UdpClient, port: number, d: Uint8Array, ms = 3000): Promise<Uint8Array | null> {
  const before = c.received.length;
  c.send(d, port);
  const deadline = performance.now() + ms;
  while (c.received.length === before) {
    if (performance.now() > deadline) return null;
    await Bun.sleep(1);
  }
  return c.received[before] as Uint8Array;
}

test("seeded: datagrams of random sizes 1..65,507 come back whole and byte-exact through a /udp route", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo" });
  await agent(srv, { ...EDGE, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp` });
  const port = srv.routePorts[0] as number;
  const c = await udpClient();
  const rng = new Prng(2020);
  let bytes = 0;
  for (let i = 0; i < 150; i++) {
    const n = i === 0 ? MAX_DATAGRAM_BYTES : i === 1 ? 1 : 1 + rng.int(MAX_DATAGRAM_BYTES);
    const d = rng.bytes(n);
    const back = await roundTrip(c, port, d);
    expect(back).not.toBeNull();
    expect(Buffer.compare(back as Uint8Array, d)).toBe(0);
    bytes += n;
  }
  const t = srv.stats.udp.tally("edge/echo");
  expect(t.datagramsUp).toBe(150);
  expect(t.datagramsDown).toBe(150);
  expect(t.bytesUp).toBe(bytes);
  c.close();
  echo.close();
}, 60_000);

test("each visitor address is its own flow: replies go to the visitor that asked", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo" });
  await agent(srv, { ...EDGE, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp` });
  const port = srv.routePorts[0] as number;
  const clients = await Promise.all(Array.from({ length: 10 }, () => udpClient()));
  for (const [i, c] of clients.entries()) for (let k = 0; k < 5; k++) c.send(`client ${i} message ${k}`, port);
  await waitFor(() => clients.every((c) => c.received.length === 5), "every echo");
  for (const [i, c] of clients.entries()) {
    expect(c.received.map((d) => new TextDecoder().decode(d)).sort()).toEqual([0, 1, 2, 3, 4].map((k) => `client ${i} message ${k}`));
  }
  expect(srv.udpRoutes[0]?.flows.size).toBe(10);
  for (const c of clients) c.close();
  echo.close();
});

test("a datagram over 65,507 bytes (IPv6 loopback allows 65,527) is dropped and counted; the flow goes on", async () => {
  const echo = await udpEcho("::1");
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "[::1]:0/udp=edge/echo" });
  await agent(srv, { ...EDGE, TUNNEL_SERVICES: `echo=[::1]:${echo.port}/udp` });
  const port = srv.routePorts[0] as number;
  const c = await udpClient("::1");
  expect(await roundTrip(c, port, new Uint8Array(MAX_DATAGRAM_BYTES + 1), 300)).toBeNull(); // opens no flow
  expect(new TextDecoder().decode((await roundTrip(c, port, new TextEncoder().encode("small"))) as Uint8Array)).toBe("small");
  expect(await roundTrip(c, port, new Uint8Array(65_527), 300)).toBeNull(); // on an open flow
  expect(new TextDecoder().decode((await roundTrip(c, port, new TextEncoder().encode("again"))) as Uint8Array)).toBe("again");
  expect(srv.stats.udp.tally("edge/echo").dropped.get("oversized")).toBe(2);
  c.close();
  echo.close();
});

test("a UDP flow for a TCP service, and a TCP visitor for a UDP service, are refused with PROTOCOL_MISMATCH", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/web,127.0.0.1:0=edge/dns" });
  const a = await agent(srv, { ...EDGE, TUNNEL_SERVICES: `web=127.0.0.1:1,dns=127.0.0.1:${echo.port}/udp` });
  const c = await udpClient();
  expect(await roundTrip(c, srv.routePorts[0] as number, new TextEncoder().encode("q"), 300)).toBeNull();
  const closed = new Promise<void>((resolve) => {
    void Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[1] as number, socket: { data() {}, close: () => resolve() } });
  });
  await closed;
  await waitFor(() => a.services.protocolMismatchCount === 2, "two refusals");
  const code = WireCode.PROTOCOL_MISMATCH;
  await waitFor(() => srv.stats.resetsByCode.get(code) === 2, "two resets on the server");
  expect(srv.stats.resetsByRouteCode.get("edge/web\u0000PROTOCOL_MISMATCH")).toBe(1);
  expect(srv.stats.resetsByRouteCode.get("edge/dns\u0000PROTOCOL_MISMATCH")).toBe(1);
  c.close();
  echo.close();
});

test("an idle flow is closed on both ends after TUNNEL_UDP_IDLE_TIMEOUT_MS; the visitor's next datagram opens a new one", async () => {
  const echo = await udpEcho();
  const idle = { TUNNEL_UDP_IDLE_TIMEOUT_MS: "1000" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo", ...idle });
  const a = await agent(srv, { ...EDGE, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp`, ...idle });
  const port = srv.routePorts[0] as number;
  const c = await udpClient();
  expect(await roundTrip(c, port, new TextEncoder().encode("one"))).not.toBeNull();
  const route = srv.udpRoutes[0];
  expect(route?.flows.size).toBe(1);
  expect(a.services.flows.size).toBe(1);
  const started = performance.now();
  await waitFor(() => route?.flows.size === 0 && a.services.flows.size === 0, "both ends closed the flow", 4000);
  expect(performance.now() - started).toBeGreaterThan(700);
  expect(srv.stats.resetsByRouteCode.get("edge/echo\u0000IDLE_TIMEOUT")).toBe(1);
  expect(await roundTrip(c, port, new TextEncoder().encode("two"))).not.toBeNull();
  expect(srv.stats.streamsOpenedByRoute.get("edge/echo")).toBe(2);
  c.close();
  echo.close();
});

test("agent restart mid-flow: the visitor's flow is re-established on the new agent", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo" });
  const env = { ...EDGE, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp` };
  const first = await agent(srv, env);
  const port = srv.routePorts[0] as number;
  const c = await udpClient();
  expect(await roundTrip(c, port, new TextEncoder().encode("before"))).not.toBeNull();
  await first.close(false);
  await waitFor(() => srv.udpRoutes[0]?.flows.size === 0, "the flow ended with its connection");
  const second = await startAgent(agentConfig({ TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, ...env }));
  await second.ready();
  let back: Uint8Array | null = null;
  for (let i = 0; i < 20 && back === null; i++) back = await roundTrip(c, port, new TextEncoder().encode(`after ${i}`), 250);
  expect(new TextDecoder().decode(back as Uint8Array)).toStartWith("after");
  expect(second.services.flows.size).toBe(1);
  await second.close(false);
  c.close();
  echo.close();
});

test("an agent draining: its flows move to another agent at once, and its drain does not wait for them", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo" });
  const env = { ...EDGE, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp`, TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: "60000" };
  const agents = [await agent(srv, { ...env, TUNNEL_HOSTNAME: "a" }), await agent(srv, { ...env, TUNNEL_HOSTNAME: "b" })];
  const port = srv.routePorts[0] as number;
  const c = await udpClient();
  expect(await roundTrip(c, port, new TextEncoder().encode("before"))).not.toBeNull();
  const carrying = agents.find((a) => a.services.flows.size === 1);
  const other = agents.find((a) => a !== carrying);
  if (carrying === undefined || other === undefined) throw new Error("the flow is on neither agent");
  let drained = false;
  const closing = carrying.close(true).then(() => (drained = true));
  // The server resets the flow when the agent's GOAWAY arrives (SHUTTING_DOWN): the next datagram opens a new flow
  // on the other agent. Before, the flow stayed on the draining connection, which then closed only at the grace.
  await waitFor(() => srv.udpRoutes[0]?.flows.size === 0, "the flow on the draining agent ended");
  expect(await roundTrip(c, port, new TextEncoder().encode("after"))).not.toBeNull();
  expect(other.services.flows.size).toBe(1);
  await waitFor(() => drained, "the drain finished, well before its 60 s grace", 20_000);
  await closing;
  c.close();
  echo.close();
}, 30_000);

test("a service that never answers: datagrams reach it, nothing comes back, the flow ends at the idle timeout", async () => {
  const sink = await udpSink();
  const idle = { TUNNEL_UDP_IDLE_TIMEOUT_MS: "1000" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/mute", ...idle });
  await agent(srv, { ...EDGE, TUNNEL_SERVICES: `mute=127.0.0.1:${sink.socket.port}/udp`, ...idle });
  const c = await udpClient();
  for (let i = 0; i < 10; i++) c.send(`q${i}`, srv.routePorts[0] as number);
  await waitFor(() => sink.received.length === 10, "the service got every datagram");
  await waitFor(() => srv.udpRoutes[0]?.flows.size === 0, "the flow closed", 4000);
  expect(c.received.length).toBe(0);
  c.close();
  sink.socket.close();
});

test("a UDP service where nothing listens (ICMP port unreachable on every send): datagrams are lost, the agent lives on", async () => {
  const closed = await freePort();
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/gone,127.0.0.1:0/udp=edge/echo" });
  await agent(srv, { ...EDGE, TUNNEL_SERVICES: `gone=127.0.0.1:${closed}/udp,echo=127.0.0.1:${echo.port}/udp` });
  const [gonePort, echoPort] = srv.routePorts as [number, number];
  const c = await udpClient();
  for (let i = 0; i < 200; i++) {
    c.send(new Uint8Array([i & 255]), gonePort);
    if (i % 20 === 19) await new Promise((r) => setImmediate(r)); // a turn of the loop: the ICMP errors reach the agent
  }
  await waitFor(() => (srv.stats.udp.tally("edge/gone").datagramsUp ?? 0) >= 20, "datagrams carried to the agent");
  // The agent is still there: another flow on the same connection is served byte-exact.
  const d = new Uint8Array(300).fill(7);
  const back = await roundTrip(c, echoPort, d);
  expect(back).not.toBeNull();
  expect(Buffer.compare(back as Uint8Array, d)).toBe(0);
  c.close();
  echo.close();
}, 30_000);

test("UDP flows take at most half of a connection's streams: TCP visitors still get one beside a flood of flows", async () => {
  const sink = await udpSink();
  const tcpEcho = startEchoServer();
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none", TUNNEL_MAX_STREAMS_PER_CONNECTION: "8",
    TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/sink,127.0.0.1:0=edge/echo",
  });
  await agent(srv, { ...EDGE, TUNNEL_MAX_STREAMS_PER_CONNECTION: "8", TUNNEL_SERVICES: `sink=127.0.0.1:${sink.socket.port}/udp,echo=127.0.0.1:${tcpEcho.port}` });
  const [udpPort, tcpPort] = srv.routePorts as [number, number];
  const clients = await Promise.all(Array.from({ length: 10 }, () => udpClient()));
  for (const c of clients) c.send(new Uint8Array([1]), udpPort);
  const t = srv.stats.udp.tally("edge/sink");
  await waitFor(() => (t.dropped.get("flow_limit") ?? 0) === 6 && sink.received.length === 4, "4 flows carried, 6 refused");
  expect(srv.udpRoutes[0]?.flows.size).toBe(4);
  // Half the connection's 8 streams stay for TCP: visitors are served byte-exact.
  for (let i = 0; i < 3; i++) expect((await runVisitor({ port: tcpPort, seed: 40 + i, sendBytes: 64 * 1024 })).ok).toBe(true);
  for (const c of clients) c.close();
  sink.socket.close();
  tcpEcho.stop();
}, 30_000);

test("an agent whose stream limit is below the server's keeps half of it for TCP: it refuses UDP flows past that half", async () => {
  // Found by a hostile-visitor review (issue 20): the server counts UDP's half of its own limit (4096 here), which
  // the agent's 8 streams were far below; UDP flows took all 8 and every TCP visitor was refused.
  const sink = await udpSink();
  const tcpEcho = startEchoServer();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/sink,127.0.0.1:0=edge/echo" });
  const a = await agent(srv, { ...EDGE, TUNNEL_MAX_STREAMS_PER_CONNECTION: "8", TUNNEL_SERVICES: `sink=127.0.0.1:${sink.socket.port}/udp,echo=127.0.0.1:${tcpEcho.port}` });
  const [udpPort, tcpPort] = srv.routePorts as [number, number];
  const clients = await Promise.all(Array.from({ length: 10 }, () => udpClient()));
  for (const c of clients) c.send(new Uint8Array([1]), udpPort);
  await waitFor(() => a.stats.refused.stream_limit + sink.received.length === 10, "every flow carried or refused");
  expect(sink.received.length).toBe(4);
  await waitFor(() => srv.udpRoutes[0]?.flows.size === 4, "the refused flows closed on the server");
  const visitors = await Promise.all([0, 1, 2, 3].map((i) => runVisitor({ port: tcpPort, seed: 60 + i, sendBytes: 64 * 1024 })));
  for (const v of visitors) expect(v.ok).toBe(true);
  for (const c of clients) c.close();
  sink.socket.close();
  tcpEcho.stop();
}, 30_000);
