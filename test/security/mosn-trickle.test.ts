/**
 * Plain MOSN agents (TUNNEL_MOSN_AGENTS=on) trickling bytes one byte per read on idle raw connections, before any
 * visitor takes them (server/raw-link.ts): SPEC.md §7 keeps up to 64 KiB per idle connection for its first visitor.
 * What the server holds for them must stay near those bytes, not one buffer object per read (measured before the fix:
 * about 57 times the bytes). A server in a child process (its peak RSS read from /proc); the bytes then reach the
 * visitors byte-exact.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { sourceCommand, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { mosnFrame, mosnInitInfoJson } from "../support/mosn-agent.ts";
import { waitFor } from "../support/net.ts";
import { peakRssKiB } from "../../scripts/lib/proc.ts";

const MiB = 1024 * 1024;
const CONNECTIONS = 10;
const EARLY = 60 * 1024;
let proc: RoleProcess | null = null;
afterEach(async () => {
  await proc?.stop(1_000);
  proc = null;
});

/** Peak RSS (VmHWM) of a process in bytes (scripts/lib/proc.ts). */
const peakRss = async (pid: number): Promise<number> => peakRssKiB(pid) * 1024;

test("10 idle raw connections each trickle 60 KiB one byte per write: the server holds about the bytes; visitors get them", async () => {
  const started = await startServerProcess(sourceCommand("server"), {
    TUNNEL_TLS: "off",
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_MOSN_AGENTS: "on",
    TUNNEL_CLUSTERS: "open=none",
    TUNNEL_ROUTES: "127.0.0.1:0=open/web",
  });
  proc = started.role;
  const early = Uint8Array.from({ length: EARLY }, (_, i) => (i * 7 + 3) & 0xff);
  const answered: number[] = Array.from({ length: CONNECTIONS }, () => 0);
  const raws: Socket[] = await Promise.all(
    Array.from({ length: CONNECTIONS }, (_, i) =>
      Bun.connect({ hostname: "127.0.0.1", port: started.agentPort, socket: { data: (_s, d) => void (answered[i] = (answered[i] ?? 0) + d.byteLength) } }),
    ),
  );
  for (const s of raws) {
    s.setNoDelay(true);
    s.write(mosnFrame(1, mosnInitInfoJson("open", "", "")));
  }
  // MOSN's success response: 8-byte header + {"status":1}.
  await waitFor(() => answered.every((n) => n === 20), "each raw connection's status 1");
  const before = await peakRss(proc.proc.pid);
  for (let at = 0; at < EARLY; at++) {
    for (const s of raws) s.write(early.subarray(at, at + 1));
    await new Promise((r) => setImmediate(r)); // let the writes go out one read at a time
  }
  // Each visitor takes one idle raw connection and gets its kept bytes first, byte-exact.
  for (let v = 0; v < CONNECTIONS; v++) {
    const got: Uint8Array[] = [];
    const visitor = await Bun.connect({ hostname: "127.0.0.1", port: started.routePorts[0] as number, socket: { data: (_s, d) => void got.push(new Uint8Array(d)) } });
    await waitFor(() => got.reduce((n, c) => n + c.byteLength, 0) >= EARLY, `visitor ${v}'s ${EARLY} bytes`, 30_000);
    expect(Buffer.compare(Buffer.concat(got), Buffer.from(early))).toBe(0);
    visitor.end();
  }
  const grew = (await peakRss(proc.proc.pid)) - before;
  console.log(`raw trickle: peak RSS grew ${(grew / MiB).toFixed(1)} MiB for ${CONNECTIONS} connections × ${EARLY} bytes`);
  expect(grew).toBeLessThan(12 * MiB); // measured: 33.5 MiB before the fix, 3.6 MiB after
  for (const s of raws) s.end();
}, 120_000);
