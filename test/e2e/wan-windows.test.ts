/**
 * Adaptive stream windows end to end (SPEC.md §2.2), through the userspace WAN link (scripts/lib/wan-link.ts) placed
 * between agent and server: with a 64 KiB base window a stream of a 40 ms / 100 Mbit/s link would be held to
 * 64 KiB per round trip; its windows grow on both sides while it moves bytes, fall back to the base after it idles
 * (heartbeat every 200 ms), and grow again when it resumes. Every byte is verified; nothing is timed.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { WanLink } from "../../scripts/lib/wan-link.ts";
import { startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { PatternSource, PatternVerifier } from "../support/pattern.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let echo: TestServer;
let link: WanLink;
beforeAll(() => {
  echo = startEchoServer();
  link = new WanLink({ rttMs: 40, mbit: 100 });
});
afterAll(() => {
  link.close();
  echo.stop();
});
afterEach(stopAll);

test("a stream's windows grow on a long link while it moves bytes, fall back after it idles, and grow again", async () => {
  const WINDOWS = { TUNNEL_STREAM_WINDOW_BYTES: "65536", TUNNEL_STREAM_WINDOW_MAX_BYTES: String(8 * MiB), TUNNEL_HEARTBEAT_INTERVAL_MS: "200" };
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", ...WINDOWS });
  const port = link.listen(srv.agentPort);
  await agent({ ...srv, agentPort: port }, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...WINDOWS });
  const host = [...srv.registry.hosts()][0];
  if (!host) throw new Error("no host");
  await waitFor(() => host.session.rttMs >= 40, "the first PONG through the link");

  const source = new PatternSource(15);
  const verifier = new PatternVerifier(15);
  let pending: Uint8Array | null = null;
  let toSend = 0;
  const pump = (s: Socket<undefined>) => {
    while (toSend > 0 || pending !== null) {
      if (pending === null) {
        const n = Math.min(64 * KiB, toSend);
        pending = source.next(n);
        toSend -= n;
      }
      const w = s.write(pending);
      if (w < pending.byteLength) {
        pending = pending.subarray(Math.max(0, w));
        return;
      }
      pending = null;
    }
  };
  const visitor = await Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[0] as number, socket: { open() {}, drain: pump, data: (_s, d) => verifier.push(d) } });
  const stream = () => [...host.session.streams.values()][0];
  let largest = 0;
  const sampler = setInterval(() => void (largest = Math.max(largest, stream()?.receiveWindow ?? 0)), 5);
  /** Sends `bytes` more and waits until all of them came back byte-exact; returns the largest server window meanwhile. */
  const burst = async (bytes: number): Promise<number> => {
    largest = 0;
    const expected = verifier.received + bytes;
    toSend += bytes;
    pump(visitor);
    await waitFor(() => verifier.received >= expected, `${bytes} bytes echoed`, 60_000);
    expect(verifier.firstMismatch).toBe(-1);
    expect(verifier.received).toBe(expected);
    return largest;
  };
  try {
    const first = await burst(6 * MiB);
    expect(first).toBeGreaterThanOrEqual(128 * KiB); // grown past the 64 KiB base
    // Idle: within a few heartbeats the window is back at the base (credit withheld until the peer's is below it).
    await waitFor(() => stream()?.receiveWindow === 64 * KiB, "the window back at the base after idling", 10_000);
    const again = await burst(6 * MiB);
    expect(again).toBeGreaterThanOrEqual(128 * KiB);
    console.log(`40 ms / 100 Mbit/s link, 64 KiB base: server window up to ${(first / KiB).toFixed(0)} KiB, then 64 KiB idle, then ${(again / KiB).toFixed(0)} KiB`);
  } finally {
    clearInterval(sampler);
    visitor.terminate();
  }
}, 90_000);
