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
import { startRogueServer, u32, type RogueConn, type RogueServer } from "../support/rogue-server.ts";
import { frame, openFrame } from "../support/security-net.ts";
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
 * Runs a flood of `streams` × 2 MiB against the stalled target, released after 3 s (later on a loaded machine: not
 * before the echo stream was served, so `echoServedStalled` says whether it was served while the target was still
 * not accepting; at the latest 10 s in), sampling the agent's RSS every 20 ms, until `enough` (or every stream is over). Gives up early (with the peak so far) once the RSS passes the
 * limit: today's agent would go on to gigabytes.
 */
async function floodWhileStalled(
  respectWindow: boolean,
  streams: number,
  enough: (rec: FloodRecord) => boolean = (rec) => rec.done(),
): Promise<{ rec: FloodRecord; peakRss: number; echoServedStalled: boolean }> {
  const p = await startAgentProcess();
  const [conn] = await rogue.dataConns(1);
  await target.stall();
  const baseRss = await rssOf(p.proc.pid);
  let peakRss = baseRss;
  const started = performance.now();
  const rec = flood(conn!, { streams, bytesPerStream: 2 * MiB, respectWindow, service: "slow", echoService: "echo", echoBytes: 256 * 1024 });
  const deadline = started + 18_000;
  let echoMs = Infinity;
  let releasedAt = Infinity;
  while (!enough(rec) && performance.now() < deadline && peakRss <= RSS_LIMIT) {
    if (echoMs === Infinity && rec.echoOk()) echoMs = performance.now() - started;
    const since = performance.now() - started;
    if (releasedAt === Infinity && since >= STALL_MS && (echoMs < Infinity || since >= 10_000)) {
      releasedAt = since;
      target.release();
    }
    peakRss = Math.max(peakRss, await rssOf(p.proc.pid));
    await new Promise((r) => setTimeout(r, 20));
  }
  if (echoMs === Infinity && rec.echoOk()) echoMs = performance.now() - started;
  rec.stop();
  target.release();
  console.log(
    `${respectWindow ? "window-respecting" : "window-ignoring"} flood: agent RSS ${(baseRss / MiB).toFixed(0)} MiB → peak ` +
      `${(peakRss / MiB).toFixed(0)} MiB; ${(rec.sent / MiB).toFixed(0)} MiB sent in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return { rec, peakRss, echoServedStalled: echoMs < releasedAt };
}

describe("defect 4: 1,000 streams × 2 MiB to a target that accepts after 3 s", () => {
  test("an honest server sends 64 KiB per stream until the ACK, then the rest: RSS stays low, the echo stream is served", async () => {
    // Past the stall, enough once every stream's window was widened (the echo stream's too) and the target got more than the opening windows
    // (the whole 2 GiB takes 5 s on an idle machine, too long on a busy one; tunnel tests check bytes exactly).
    const opening = 1000 * 64 * 1024;
    const widened = (rec: FloodRecord) => rec.windowAfterAck.size === 1001 && rec.echoOk() && target.received > 2 * opening;
    const { rec, peakRss, echoServedStalled } = await floodWhileStalled(true, 1000, widened);
    expect(peakRss).toBeLessThan(RSS_LIMIT);
    expect(rec.echoOk()).toBe(true);
    expect(echoServedStalled).toBe(true); // served while the flood's target was still not accepting
    expect(rec.resets.size).toBe(0);
    // After its ACK each stream's window grew to TUNNEL_STREAM_WINDOW_BYTES (2 MiB) by one WINDOW.
    for (let id = 1; id <= 1000; id++) expect(rec.windowAfterAck.get(id) ?? 0).toBeGreaterThanOrEqual(2 * MiB - 64 * 1024);
    expect(target.received).toBeGreaterThan(2 * opening);
  }, 30_000);

  test("a hostile server that ignores the window is reset with FLOW_CONTROL_ERROR: RSS stays low, the echo stream is served", async () => {
    const { rec, peakRss, echoServedStalled } = await floodWhileStalled(false, 1000);
    expect(peakRss).toBeLessThan(RSS_LIMIT);
    expect(rec.echoOk()).toBe(true);
    expect(echoServedStalled).toBe(true);
    expect(rec.resets.size).toBe(1000);
    for (const code of rec.resets.values()) expect(code).toBe(WireCode.FLOW_CONTROL_ERROR);
  }, 30_000);
});

/** OPENs streams `ids` to "slow" on `conn`, then a PING; resolves once its PONG shows the agent handled them all. */
async function openAll(conn: RogueConn, ids: number[], resets: Map<number, number>, acks: Set<number>): Promise<void> {
  let ponged = false;
  conn.onFrame = (f) => {
    if (f.type === 0x04) resets.set(f.streamId, u32(f.payload));
    else if (f.type === 0x02) acks.add(f.streamId);
    else if (f.type === 0x07) ponged = true;
  };
  conn.send(new Uint8Array(Buffer.concat([...ids.map((id) => openFrame(id, "slow")), frame(0x06, 0, new Uint8Array(8))])));
  await waitFor(() => ponged, "the agent's PONG");
}

describe("inbound budgets: past them new streams are refused with REFUSED_STREAM, not buffered", () => {
  test("per connection: each stream whose target is not connected counts its 64 KiB opening window", async () => {
    await startAgentProcess({ TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION: String(MiB) });
    const [conn] = await rogue.dataConns(1);
    await target.stall();
    const resets = new Map<number, number>();
    const acks = new Set<number>();
    await openAll(conn!, range(1, 24), resets, acks);
    // 16 × 64 KiB = 1 MiB: streams 17..24 are refused at once, 1..16 wait for their target.
    expect([...resets.keys()].sort((a, b) => a - b)).toEqual(range(17, 24));
    for (const code of resets.values()) expect(code).toBe(WireCode.REFUSED_STREAM);
    // Once their targets are connected they no longer hold the budget: a new stream is served.
    target.release();
    await waitFor(() => acks.size === 16, "the 16 admitted streams to be acknowledged", 10_000);
    await openAll(conn!, [25], resets, acks);
    await waitFor(() => acks.has(25), "stream 25 to be acknowledged", 10_000);
    expect(resets.has(25)).toBe(false);
  }, 20_000);

  test("per process: the budget spans the agent's connections", async () => {
    await startAgentProcess({ TUNNEL_INBOUND_MAX_BYTES: String(MiB) }, 2);
    const [a, b] = await rogue.dataConns(2);
    await target.stall();
    const resetsA = new Map<number, number>();
    const resetsB = new Map<number, number>();
    await openAll(a!, range(1, 10), resetsA, new Set());
    await openAll(b!, range(1, 10), resetsB, new Set());
    expect(resetsA.size).toBe(0);
    expect([...resetsB.keys()].sort((x, y) => x - y)).toEqual(range(7, 10));
    for (const code of resetsB.values()) expect(code).toBe(WireCode.REFUSED_STREAM);
  }, 20_000);
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
