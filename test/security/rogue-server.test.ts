/**
 * A rogue server against a real agent process (issue 14, defect 5): it answers every handshake, opens a stream to an
 * allowlisted service and sends GOAWAY at once, over and over. The agent must not redial without limit (replacement
 * dials back off while connections die young, and draining connections per slot are capped), its descriptors stay
 * flat, and its connections to a second, honest server keep carrying traffic byte-exact.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { server, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { frame, openFrame, startFakeServer, type FakeServer } from "../support/security-net.ts";
import { sourceCommand, spawnRole, type RoleProcess } from "../../scripts/lib/roles.ts";
import { openFds } from "../../scripts/lib/proc.ts";

let echo: TestServer;
let rogue: FakeServer;
let agentProc: RoleProcess | null = null;

beforeAll(() => {
  echo = startEchoServer();
  rogue = startFakeServer({
    onConnection(conn) {
      if (conn.role !== "data") return;
      conn.send(openFrame(1, "echo"));
      const goAway = new Uint8Array(8);
      new DataView(goAway.buffer).setUint32(0, 1);
      conn.send(frame(0x08, 0, goAway));
    },
  });
});
afterAll(async () => {
  await agentProc?.stop(2_000);
  rogue.stop();
  echo.stop();
  await stopAll();
});

test("GOAWAY after every handshake: at most 30 dials in 5 s, descriptors flat, the honest server still served", async () => {
  const honest = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  agentProc = spawnRole(sourceCommand("agent"), {
    TUNNEL_TLS: "off",
    TUNNEL_SERVERS: `127.0.0.1:${honest.agentPort},127.0.0.1:${rogue.port}`,
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "edge-1",
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    TUNNEL_LOG_LEVEL: "warn",
  });
  const pid = agentProc.proc.pid;
  await waitFor(() => [...honest.registry.hosts()].length === 2 && rogue.conns.length >= 2, "the agent at both servers", 10_000);
  const fdsBefore = openFds(pid) ?? 0;
  const dialsBefore = rogue.conns.length;
  const windowEnd = performance.now() + 5_000;
  let fdsMax = fdsBefore;
  // A measurement window, not a sleep standing in for an event: sample until it ends.
  await waitFor(() => ((fdsMax = Math.max(fdsMax, openFds(pid) ?? 0)), performance.now() >= windowEnd), "the 5 s window", 7_000);
  const dials = rogue.conns.length - dialsBefore;
  console.log(`rogue dials in 5 s: ${dials}; agent fds ${fdsBefore} -> max ${fdsMax}`);
  expect(dials).toBeLessThanOrEqual(30);
  expect(fdsMax - fdsBefore).toBeLessThanOrEqual(12);
  const r = await runVisitor({ port: honest.routePorts[0] as number, seed: 7, sendBytes: 1 << 20 });
  expect(r.ok).toBe(true);
}, 30_000);
