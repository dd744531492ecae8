/**
 * Request heads trickled one byte per read to a host= address (server/name-sniffer.ts, protocol/http-head.ts), against
 * a server in a child process whose CPU time is read from /proc: 16 KiB of empty lines (RFC 9112 §2.2 lets a request
 * start with some) must cost the server about what 16 KiB of an ordinary head does. Before the fix every read
 * rescanned all the empty lines so far (about 0.4 s of CPU per visitor against about 0.15 s, so a few slow visitors
 * took a core from every tunnel of the process). Every visitor still gets its 431.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { portOf, sourceCommand, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { waitFor } from "../support/net.ts";
import { cpuSeconds } from "../../scripts/lib/proc.ts";

const CONNECTIONS = 12;
let proc: RoleProcess | null = null;
afterEach(async () => {
  await proc?.stop(1_000);
  proc = null;
});

/** CPU time (user + system, ms) a process used so far (scripts/lib/proc.ts). */
const cpuMs = async (pid: number): Promise<number> => cpuSeconds(pid) * 1000;

/**
 * Opens `CONNECTIONS` sockets to `port` and writes `bytes` to each one byte per write, a round at a time: after each
 * round a GET /healthz on the server's admin endpoint (keep-alive), so that the server has read the round (one byte
 * per read, as a paced attacker gets) before the next goes out. Resolves with the answers so far.
 */
async function trickle(port: number, adminPort: number, bytes: Uint8Array): Promise<{ answers: () => string[]; sockets: Socket[] }> {
  const got: string[] = Array.from({ length: CONNECTIONS }, () => "");
  const sockets = await Promise.all(
    Array.from({ length: CONNECTIONS }, (_, i) =>
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void (got[i] += Buffer.from(d).toString("latin1")) } }),
    ),
  );
  for (const s of sockets) s.setNoDelay(true);
  for (let at = 0; at < bytes.length; at++) {
    for (const s of sockets) s.write(bytes.subarray(at, at + 1));
    await (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).text();
  }
  return { answers: () => got, sockets };
}

async function serverProcess(env: Record<string, string>) {
  const started = await startServerProcess(sourceCommand("server"), {
    TUNNEL_ADMIN_LISTEN: "127.0.0.1:0",
    TUNNEL_TLS: "off",
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_HANDSHAKE_TIMEOUT_MS: "120000",
    ...env,
  });
  proc = started.role;
  const admin = await started.role.waitForLog((l) => l.msg === "admin listening");
  return { ...started, adminPort: portOf(admin.address as string) };
}

test("host= route: 16 KiB of empty lines one byte per read costs the server about what an ordinary head does; each gets its 431", async () => {
  const started = await serverProcess({ TUNNEL_ROUTES: "127.0.0.1:0=edge/app;host=app.example.com" });
  const pid = (proc as RoleProcess).proc.pid;
  const cost = async (text: string): Promise<number> => {
    const before = await cpuMs(pid);
    const { answers, sockets } = await trickle(started.routePorts[0] as number, started.adminPort, new TextEncoder().encode(text));
    await waitFor(() => answers().every((a) => a.includes("\r\n\r\n")), "every visitor's answer", 60_000);
    for (const a of answers()) expect(a).toStartWith("HTTP/1.1 431 ");
    for (const s of sockets) s.end();
    return (await cpuMs(pid)) - before;
  };
  const ordinary = await cost(`GET / HTTP/1.1\r\nX-Padding: ${"a".repeat(16 * 1024)}`);
  const emptyLines = await cost("\r\n".repeat(8 * 1024));
  console.log(`host= trickle, server CPU for ${CONNECTIONS} × 16 KiB: ordinary head ${ordinary} ms, empty lines ${emptyLines} ms`);
  expect(emptyLines).toBeLessThan(ordinary * 1.3 + 300);
}, 180_000);
