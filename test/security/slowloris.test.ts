/**
 * Pre-auth slowloris (reliability.md S1): connections that never send a byte are closed by the handshake deadline,
 * which starts at TCP accept and so covers TLS too; a real agent still connects and carries traffic during the
 * attack; the server's memory comes back. The server runs as its own process (its RSS is what we measure); the
 * attack and the agent run here. Also: the pending-handshake caps refuse the excess at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { sourceCommand, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { agent, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, type TestServer } from "../support/net.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { idleConnections, rssOf, type IdleResult } from "../support/security-net.ts";

const TOKEN = "slowloris-token-0123456789";
const DEADLINE_MS = 1500;
const MiB = 1024 * 1024;
let echo: TestServer;
const procs: RoleProcess[] = [];

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
});
afterEach(async () => {
  await stopAll();
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});
afterAll(() => echo.stop());

async function serverProcess(env: Record<string, string>) {
  const s = await startServerProcess(sourceCommand("server"), {
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_LOG_LEVEL: "info",
    TUNNEL_CLUSTERS: `edge=token:${TOKEN}`,
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_HANDSHAKE_TIMEOUT_MS: String(DEADLINE_MS),
    ...env,
  });
  procs.push(s.role);
  return s;
}

/** Warms the server up (one agent, some traffic) and returns its RSS. */
async function traffic(routePort: number, seed: number): Promise<void> {
  const r = await runVisitor({ port: routePort, seed, sendBytes: 256 * 1024 });
  expect(r.error).toBeNull();
  expect(r.ok).toBe(true);
}

function expectAllClosedByDeadline(results: IdleResult[]): void {
  const times = results.map((r) => r.closedAfterMs);
  expect(times.every((t) => Number.isFinite(t))).toBe(true);
  // Not before the deadline (no early drop: the caps were not hit), and not much after it.
  expect(Math.min(...times)).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
  expect(Math.max(...times)).toBeLessThan(DEADLINE_MS + 2500);
  // Closed without an answer: an idle peer gets nothing (it never sent a handshake).
  expect(results.every((r) => r.received === 0)).toBe(true);
}

describe("idle connections are closed by the handshake deadline while a real agent works", () => {
  for (const mode of ["tcp", "tls"] as const) {
    const n = mode === "tcp" ? 1000 : 200;
    test(`${n} idle ${mode.toUpperCase()} connections`, async () => {
      const tlsServer = mode === "tls" ? serverTlsEnv() : { TUNNEL_TLS: "off" };
      const tlsAgent = mode === "tls" ? agentTlsEnv() : {};
      const srv = await serverProcess({
        ...tlsServer,
        TUNNEL_MAX_PENDING_HANDSHAKES: "4096",
        TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP: "4096",
      });
      const pid = srv.role.proc.pid;
      const routePort = srv.routePorts[0] as number;
      const serverHandle = { agentPort: srv.agentPort } as Parameters<typeof agent>[0];
      const agentEnv = {
        ...tlsAgent,
        TUNNEL_CLUSTER: "edge",
        TUNNEL_CREDENTIAL: TOKEN,
        TUNNEL_CONNECTIONS: "1",
        TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
      };
      const first = await agent(serverHandle, agentEnv);
      await traffic(routePort, 1);
      await Bun.sleep(200);
      const rssBefore = await rssOf(pid);

      const attack = await idleConnections(srv.agentPort, n);
      // TLS: also peers that start a ClientHello (a record header) and stall; they hit the same deadline.
      if (mode === "tls") attack.push(...(await idleConnections(srv.agentPort, 20, new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))));
      // During the attack: a second agent connects (a fresh handshake), and traffic flows.
      const t0 = performance.now();
      await agent(serverHandle, { ...agentEnv, TUNNEL_HOSTNAME: "edge-2" });
      const joinMs = performance.now() - t0;
      expect(joinMs).toBeLessThan(DEADLINE_MS);
      await Promise.all([traffic(routePort, 2), traffic(routePort, 3)]);
      const rssPeak = await rssOf(pid);

      const results = await Promise.all(attack);
      expectAllClosedByDeadline(results);
      // The server logged each one as a handshake timeout.
      await Bun.sleep(100);
      const timeouts = srv.role.lines.filter((l) => l.msg === "agent handshake refused" && l.code === "ERR_HANDSHAKE_TIMEOUT");
      expect(timeouts.length).toBe(attack.length);
      expect(first.slots.some((s) => s.state === "ready")).toBe(true);
      await traffic(routePort, 4);

      await Bun.sleep(500);
      const rssAfter = await rssOf(pid);
      console.log(`${mode}: rss before ${(rssBefore / MiB).toFixed(1)} MiB, peak ${(rssPeak / MiB).toFixed(1)}, after ${(rssAfter / MiB).toFixed(1)}; agent joined in ${joinMs.toFixed(0)} ms`);
      expect(rssAfter - rssBefore).toBeLessThan(32 * MiB);
    }, 30_000);
  }
});

describe("pending-handshake caps refuse the excess at once", () => {
  test("per source address once half the slots are taken: TCP excess answered SERVER_BUSY at once, idle TLS excess closed early", async () => {
    for (const mode of ["tcp", "tls"] as const) {
      const srv = await serverProcess({
        ...(mode === "tls" ? serverTlsEnv() : { TUNNEL_TLS: "off" }),
        // The per-address cap holds while slots are scarce (half of the 40 taken), so 20 from this address.
        TUNNEL_MAX_PENDING_HANDSHAKES: "40",
        TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP: "20",
      });
      const results = await Promise.all(await idleConnections(srv.agentPort, 50));
      const early = results.filter((r) => r.closedAfterMs < DEADLINE_MS - 100);
      const late = results.filter((r) => r.closedAfterMs >= DEADLINE_MS - 50);
      expect(late.length).toBe(20);
      expect(early.length).toBe(30);
      // Plaintext: the busy response (status 17 with a retry_after_ms of 3 to 5 digits) is 42..44 bytes. TLS: an idle
      // peer never finishes its TLS handshake, so the answer (written after it) never comes: closed at the refusal timeout.
      for (const r of early) {
        if (mode === "tcp") expect(r.received >= 42 && r.received <= 44).toBe(true);
        else expect(r.received).toBe(0);
      }
    }
  }, 30_000);

  test("in total", async () => {
    const srv = await serverProcess({
      TUNNEL_TLS: "off",
      TUNNEL_MAX_PENDING_HANDSHAKES: "10",
      TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP: "1000",
    });
    const results = await Promise.all(await idleConnections(srv.agentPort, 25));
    expect(results.filter((r) => r.closedAfterMs >= DEADLINE_MS - 50).length).toBe(10);
    expect(results.filter((r) => r.received > 0).length).toBe(15);
  }, 30_000);
});
