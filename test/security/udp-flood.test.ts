/**
 * Hostile UDP (issue 20): a flood from 10,000 source addresses at a /udp route: flows stay capped
 * (TUNNEL_UDP_MAX_FLOWS), the rest is dropped and counted, memory stays bounded, and a TCP stream on the same agent
 * connection stays byte-exact (its throughput beside the flood is printed: the 20 % target is measured by the
 * bench, not asserted on a shared test runner). And an agent that never answers: datagrams beyond its opening
 * window are dropped, not queued.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { udpClient, udpSink } from "../support/udp.ts";
import { initInfo, rawAgent } from "../support/security-net.ts";

let echo: TestServer;
beforeAll(() => {
  echo = startEchoServer();
});
afterEach(() => stopAll());
afterAll(() => echo.stop());

const TCP_BYTES = 32 * 1024 * 1024;

async function tcpMbps(port: number, seed: number): Promise<number> {
  const r = await runVisitor({ port, seed, sendBytes: TCP_BYTES });
  expect(r.ok).toBe(true);
  expect(r.error).toBeNull();
  return (2 * TCP_BYTES * 8) / (r.durationMs / 1000) / 1e6;
}

test("a flood from 10,000 source addresses: flows capped, drops counted, memory bounded, TCP beside it byte-exact", async () => {
  const sink = await udpSink();
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/sink,127.0.0.1:0=edge/echo",
    TUNNEL_UDP_MAX_FLOWS: "1000",
  });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_CONNECTIONS: "1", TUNNEL_SERVICES: `sink=127.0.0.1:${sink.socket.port}/udp,echo=127.0.0.1:${echo.port}` });
  const [udpPort, tcpPort] = srv.routePorts as [number, number];
  const alone = await tcpMbps(tcpPort, 1);
  const rssBefore = process.memoryUsage().rss;
  const flood = Bun.spawn([process.execPath, "scripts/lib/udp-flood.ts", String(udpPort), "10000"], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = (flood.stdout as ReadableStream<Uint8Array>).getReader();
    let out = "";
    while (!out.includes("addresses")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("flood process ended");
      out += new TextDecoder().decode(value);
    }
    const route = srv.udpRoutes[0];
    expect(route?.flows.size).toBeLessThanOrEqual(1000);
    const beside = await tcpMbps(tcpPort, 2);
    const t = srv.stats.udp.tally("edge/sink");
    console.log(`TCP echo alone ${alone.toFixed(0)} Mbit/s, beside the UDP flood ${beside.toFixed(0)} Mbit/s ` +
      `(${((beside / alone) * 100).toFixed(0)} %); flows ${route?.flows.size}, carried ${t.datagramsUp}, dropped ${JSON.stringify(Object.fromEntries(t.dropped))}`);
    expect(route?.flows.size).toBeLessThanOrEqual(1000);
    // 20,000 datagrams from 10,000 addresses went out in the first round; the kernel may drop some of them.
    expect(t.dropped.get("flow_limit") ?? 0).toBeGreaterThan(5_000);
    expect(srv.stats.streamsOpenedByRoute.get("edge/sink") ?? 0).toBeGreaterThanOrEqual(1000);
    const rssGrowth = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    console.log(`RSS growth during the flood (server and agent in this process): ${rssGrowth.toFixed(0)} MiB`);
    expect(rssGrowth).toBeLessThan(300);
  } finally {
    flood.kill();
    await flood.exited;
    sink.socket.close();
  }
}, 120_000);

test("an agent that never answers (no ACK, no WINDOW): each flow carries its opening window, the rest is dropped, not queued", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/dns" });
  const mute = await rawAgent(srv.agentPort, initInfo({ extra: { backchannel: { version: 1, role: "data", slot: 0, instance: "mute", window: 65536, max_frame: 1 << 18 } } }));
  await waitFor(() => srv.registry.pick("edge", null) !== null, "the raw agent is registered");
  const clients = await Promise.all(Array.from({ length: 5 }, () => udpClient()));
  const d = new Uint8Array(1000).fill(7);
  const t = srv.stats.udp.tally("edge/dns");
  // Rounds of 10 datagrams per visitor (paced, so that the route socket's kernel buffer keeps up) until 500 were
  // dropped for want of credit.
  const deadline = performance.now() + 10_000;
  while ((t.dropped.get("queue_full") ?? 0) < 500 && performance.now() < deadline) {
    for (let i = 0; i < 10; i++) for (const c of clients) c.send(d, srv.routePorts[0] as number);
    await Bun.sleep(2);
  }
  expect(t.dropped.get("queue_full") ?? 0).toBeGreaterThanOrEqual(500);
  // 65,536 bytes of window per flow hold 65 records of 1,002 bytes (and the start of one more, which waits).
  expect(t.datagramsUp).toBeLessThanOrEqual(5 * 66);
  expect(srv.udpRoutes[0]?.flows.size).toBe(5);
  // What the agent got: five OPENs flagged DATAGRAM (flags byte 0x01), then DATA up to each window.
  await waitFor(() => mute.receivedBytes >= 5 * 65_536, "the windows' bytes arrived");
  const all = Buffer.concat(mute.received);
  // The server's first PING (sent right after the handshake, for the round trip) may come first: skip PINGs.
  let at = 0;
  while (all[at] === 0x06) at += 10 + all.readUInt32BE(at + 6);
  expect(all[at]).toBe(1);
  expect(all[at + 1]).toBe(1);
  // Each flow: its OPEN (≤ 64 bytes) and 65,536 bytes of records, each in a DATA frame of its own (10-byte header).
  expect(mute.receivedBytes - at).toBeLessThanOrEqual(5 * (64 + 65_536 + 67 * 10));
  for (const c of clients) c.close();
}, 30_000);
