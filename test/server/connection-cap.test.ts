/**
 * TUNNEL_MAX_CONNECTIONS (src/transport/connection-cap.ts): the default comes from the open-file limit in
 * /proc/self/limits; past the cap new agent and visitor connections are closed at once and counted
 * (limit_hits_total{limit="connections"}), the admin endpoint keeps answering, and a slot comes back when a
 * connection closes.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { defaultConnectionCap, openFileLimit, parseOpenFileLimit } from "../../src/transport/connection-cap.ts";
import { encodeHandshake } from "../../src/protocol/handshake.ts";
import { startEchoServer, waitFor } from "../support/net.ts";
import { initInfo } from "../support/security-net.ts";
import { server, stopAll } from "../support/tunnel.ts";
import { parseProm, sampleValue } from "../admin/prom.ts";
import { sourceCommand, startServerProcess } from "../../scripts/lib/roles.ts";
import { readFileSync } from "node:fs";

const echo = startEchoServer();
afterAll(() => echo.stop());
afterEach(stopAll);

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe("the default cap", () => {
  test("read from /proc/self/limits: 90% of the soft limit less 64; none without a limit", () => {
    expect(parseOpenFileLimit(LIMITS)).toBe(1024);
    expect(parseOpenFileLimit(LIMITS.replace("1024 ", "unlimited "))).toBeNull();
    expect(parseOpenFileLimit("garbage")).toBeNull();
    expect(defaultConnectionCap(1024)).toBe(857);
    expect(defaultConnectionCap(65_536)).toBe(58_918);
    expect(defaultConnectionCap(10)).toBe(1);
    expect(defaultConnectionCap(null)).toBe(Infinity);
    expect(openFileLimit("/nonexistent/limits")).toBeNull();
    if (process.platform === "linux") expect(openFileLimit()).toBeGreaterThan(0);
  });
});

test.if(process.platform === "linux")("the startup log states the open-file limit and the cap derived from it", async () => {
  const s = await startServerProcess(sourceCommand("server"), {
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_TLS: "off",
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
  });
  try {
    const line = await s.role.waitForLog((l) => l.msg === "connection cap");
    const limit = parseOpenFileLimit(readFileSync(`/proc/${s.role.proc.pid}/limits`, "utf8"));
    expect(line).toMatchObject({ level: "info", openFileLimit: limit, maxConnections: defaultConnectionCap(limit) });
  } finally {
    await s.role.stop();
  }
});

/** A connection that records what it received and when it closed. */
async function connectionTo(port: number): Promise<{ socket: Socket<undefined>; received: () => Uint8Array; closed: Promise<void> }> {
  const chunks: Uint8Array[] = [];
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_s, d) => void chunks.push(new Uint8Array(d)), close: () => closed() },
  });
  return { socket, received: () => Buffer.concat(chunks), closed: done };
}

test("past the cap connections are closed at once and counted; /healthz answers; a closed one frees its slot", async () => {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_MAX_CONNECTIONS: "3",
    TUNNEL_HANDSHAKE_TIMEOUT_MS: "30000",
  });
  expect(srv.connections.limit).toBe(3);
  const held = [await connectionTo(srv.agentPort), await connectionTo(srv.agentPort), await connectionTo(srv.agentPort)];
  await waitFor(() => srv.connections.open === 3, "three connections held");
  const extraAgent = await connectionTo(srv.agentPort);
  const extraVisitor = await connectionTo(srv.routePorts[0] as number);
  await Promise.all([extraAgent.closed, extraVisitor.closed]);
  expect(extraAgent.received().byteLength).toBe(0);
  expect(extraVisitor.received().byteLength).toBe(0);
  expect(srv.stats.limitHits.get("connections")).toBe(2);
  expect(srv.connections.open).toBe(3);

  const started = performance.now();
  const health = await fetch(`http://127.0.0.1:${srv.adminPort}/healthz`);
  expect(health.status).toBe(200);
  expect(performance.now() - started).toBeLessThan(1_000); // answered, not hung (generous: a loaded CI box)
  const metrics = parseProm(await (await fetch(`http://127.0.0.1:${srv.adminPort}/metrics`)).text());
  expect(sampleValue(metrics, "backchannel_server_limit_hits_total", { limit: "connections" })).toBe(2);

  // A held agent connection goes away: its slot is free, and a new connection gets a real handshake answer.
  held[0]?.socket.end();
  await held[0]?.closed;
  await waitFor(() => srv.connections.open === 2, "the slot to be released");
  const next = await connectionTo(srv.agentPort);
  next.socket.write(encodeHandshake({ flag: 1, body: initInfo({ cluster_name: "nope" }) }));
  await next.closed;
  expect(next.received().byteLength).toBeGreaterThan(8); // a ConnectionInitResponse (CLUSTER_NOT_EXIST)
  expect(next.received()[7]).toBe(12); // {"status":4}
  expect(srv.stats.limitHits.get("connections")).toBe(2);
});
