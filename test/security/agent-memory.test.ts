/**
 * Issue 14, defect 4: the agent's memory while a target is slow to accept. A rogue server (raw frames, this process)
 * floods a real agent (a child process, so its RSS can be read from /proc) with 1,000 streams × 2 MiB to a target
 * that accepts only after 3 s, while a legitimate stream to another service must be served byte-exact. The agent
 * grants 64 KiB per stream until its target is connected (SPEC.md §2.2): an honest server sends no more, a hostile
 * one that does is reset with FLOW_CONTROL_ERROR; and an inbound budget per connection and per process refuses new
 * streams (REFUSED_STREAM) rather than buffering for them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { sourceCommand, spawnRole, type RoleProcess } from "../../scripts/lib/roles.ts";
import { WireCode } from "../../src/protocol/constants.ts";
import { startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { rssOf } from "../support/security-net.ts";
import { startRogueServer, type RogueServer } from "../support/rogue-server.ts";
import { startStalledTarget, type StalledTarget } from "../support/stalled-target.ts";
import { flood, type FloodRecord } from "../support/stream-flood.ts";

const MiB = 1024 * 1024;
const RSS_LIMIT = 300 * MiB;
const STALL_MS = 3_000;

let target: StalledTarget;
let echo: TestServer;
let rogue: RogueServer;
let agentProc: RoleProcess | null = null;

beforeAll(async () => {
  target = await startStalledTarget();
  echo = startEchoServer();
});
afterEach(async () => {
  await agentProc?.stop(1_000);
  agentProc = null;
  rogue?.stop();
  target.release();
});
afterAll(async () => {
  await target.stop();
  echo.stop();
});

/** A real agent in a child process, connected to the rogue server with `connections` data connections. */
async function startAgentProcess(env: Record<string, string> = {}, connections = 1): Promise<RoleProcess> {
  rogue = startRogueServer();
  const p = spawnRole(sourceCommand("agent"), {
    TUNNEL_TLS: "off",
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_SERVERS: `127.0.0.1:${rogue.port}`,
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "edge-1",
    TUNNEL_CONNECTIONS: String(connections),
    TUNNEL_SERVICES: `slow=127.0.0.1:${target.port},echo=127.0.0.1:${echo.port}`,
    TUNNEL_CONNECT_TIMEOUT_MS: "15000",
    ...env,
  });
  agentProc = p;
  await rogue.dataConns(connections);
  return p;
}

/**
 * Runs a flood of `streams` × 2 MiB against the stalled target, released after 3 s, sampling the agent's RSS every
 * 20 ms. Gives up early (with the peak so far) once the RSS passes the limit: today's agent would go on to gigabytes.
 */
async function floodWhileStalled(respectWindow: boolean, streams: number): Promise<{ rec: FloodRecord; peakRss: number; baseRss: number }> {
  const p = await startAgentProcess();
  const [conn] = await rogue.dataConns(1);
  await target.stall();
  const baseRss = await rssOf(p.proc.pid);
  let peakRss = baseRss;
  const started = performance.now();
  const rec = flood(conn!, { streams, bytesPerStream: 2 * MiB, respectWindow, service: "slow", echoService: "echo", echoBytes: 256 * 1024 });
  const deadline = started + 18_000;
  while (!rec.done() && performance.now() < deadline && peakRss <= RSS_LIMIT) {
    if (performance.now() - started >= STALL_MS) target.release();
    peakRss = Math.max(peakRss, await rssOf(p.proc.pid));
    await new Promise((r) => setTimeout(r, 20));
  }
  rec.stop();
  target.release();
  console.log(
    `${respectWindow ? "window-respecting" : "window-ignoring"} flood: agent RSS ${(baseRss / MiB).toFixed(0)} MiB → peak ` +
      `${(peakRss / MiB).toFixed(0)} MiB; ${(rec.sent / MiB).toFixed(0)} MiB sent in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return { rec, peakRss, baseRss };
}

describe("defect 4: 1,000 streams × 2 MiB to a target that accepts after 3 s", () => {
  test("an honest server sends 64 KiB per stream until the ACK: RSS stays low, every byte arrives, the echo stream is served", async () => {
    const { rec, peakRss } = await floodWhileStalled(true, 1000);
    expect(peakRss).toBeLessThan(RSS_LIMIT);
    expect(rec.echoOk()).toBe(true);
    expect(rec.done()).toBe(true);
    expect(rec.resets.size).toBe(0);
    // After its ACK each stream's window grew to TUNNEL_STREAM_WINDOW_BYTES (2 MiB) by one WINDOW.
    for (let id = 1; id <= 1000; id++) expect(rec.windowAfterAck.get(id) ?? 0).toBeGreaterThanOrEqual(2 * MiB - 64 * 1024);
    await waitFor(() => target.received === 1000 * 2 * MiB, "the target to read every byte");
  }, 30_000);

  test("a hostile server that ignores the window is reset with FLOW_CONTROL_ERROR: RSS stays low, the echo stream is served", async () => {
    const { rec, peakRss } = await floodWhileStalled(false, 1000);
    expect(peakRss).toBeLessThan(RSS_LIMIT);
    expect(rec.echoOk()).toBe(true);
    expect(rec.resets.size).toBe(1000);
    for (const code of rec.resets.values()) expect(code).toBe(WireCode.FLOW_CONTROL_ERROR);
  }, 30_000);
});
