/**
 * Visitors trickling their first bytes one byte per read to an address shared by name (server/name-sniffer.ts):
 * 100 visitors each send a 12 KiB ClientHello (a padding extension) one byte at a time, to a server in a child
 * process (so its RSS can be read). What the server keeps per visitor must stay near the bytes read (the README's
 * 16 KiB bound), not one buffer object per read (measured before the fix: about 80 times the bytes). Each visitor
 * then gets its unrecognized_name alert, byte-exact.
 */
import { afterEach, expect, test } from "bun:test";
import { sourceCommand, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { fatalAlert, TlsAlert } from "../../src/protocol/client-hello.ts";
import { waitFor } from "../support/net.ts";
import { peakRssKiB } from "../../scripts/lib/proc.ts";
import { ext, helloMessage, records, serverNameExt } from "../support/tls-hello.ts";

const MiB = 1024 * 1024;
const VISITORS = 100;
let proc: RoleProcess | null = null;
afterEach(async () => {
  await proc?.stop(1_000);
  proc = null;
});

/** Peak RSS (VmHWM) of a process in bytes (scripts/lib/proc.ts). */
const peakRss = async (pid: number): Promise<number> => peakRssKiB(pid) * 1024;

test("100 ClientHellos of 12 KiB trickled one byte per write: the server holds about the bytes, then answers each", async () => {
  const started = await startServerProcess(sourceCommand("server"), {
    TUNNEL_TLS: "off",
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/app;sni=app.example.com",
    TUNNEL_HANDSHAKE_TIMEOUT_MS: "120000",
  });
  proc = started.role;
  const port = started.routePorts[0] as number;
  // A name no route takes, without a default route: the answer is the unrecognized_name alert.
  const hello = records(helloMessage([serverNameExt([[0, "other.example.com"]]), ext(21, new Uint8Array(12 * 1024))]));
  const got: Uint8Array[][] = Array.from({ length: VISITORS }, () => []);
  const sockets = await Promise.all(
    Array.from({ length: VISITORS }, (_, i) =>
      Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void got[i]?.push(new Uint8Array(d)) } }),
    ),
  );
  for (const s of sockets) s.setNoDelay(true);
  const before = await peakRss(proc.proc.pid);
  for (let at = 0; at < hello.length; at++) {
    for (const s of sockets) s.write(hello.subarray(at, at + 1));
    await new Promise((r) => setImmediate(r)); // let the writes go out one read at a time
  }
  const alert = Buffer.from(fatalAlert(TlsAlert.UNRECOGNIZED_NAME)).toString("hex");
  const answer = (i: number) => Buffer.concat(got[i] ?? []).toString("hex");
  await waitFor(() => got.every((_, i) => answer(i).length >= alert.length), "every visitor's alert", 60_000);
  for (let i = 0; i < VISITORS; i++) expect(answer(i)).toBe(alert);
  const grew = (await peakRss(proc.proc.pid)) - before;
  console.log(`sni trickle: peak RSS grew ${(grew / MiB).toFixed(1)} MiB for ${VISITORS} visitors × ${hello.length} bytes`);
  expect(grew).toBeLessThan(32 * MiB);
  for (const s of sockets) s.end();
}, 120_000);
