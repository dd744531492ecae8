/**
 * DNS through a UDP route (issue 20): `dig` (Debian dnsutils) asks a real dnsmasq at the edge, serving a local zone
 * from a config in a temporary directory on a free port. 1,000 queries from 20 source ports (20 flows) each get
 * their own answer. CI installs both (`.ci/run`).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { freePort, run, which } from "../support/udp.ts";

const DIG = which("dig");
const DNSMASQ = which("dnsmasq");
const NAMES = 1000;
const CLIENTS = 20;

/** The address dnsmasq answers for host `i` of the zone. */
const addressOf = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.${(i * 7) % 251 + 1}`;

let dir = "";
let dnsmasq: Subprocess | null = null;
let dnsPort = 0;

beforeAll(async () => {
  if (DIG === null || DNSMASQ === null) return;
  dir = mkdtempSync(join(tmpdir(), "bc-dnsmasq-"));
  dnsPort = await freePort();
  const records = Array.from({ length: NAMES }, (_, i) => `host-record=h${i}.zone.test,${addressOf(i)}`);
  writeFileSync(join(dir, "dnsmasq.conf"), [
    `port=${dnsPort}`, "listen-address=127.0.0.1", "bind-interfaces", "no-resolv", "no-hosts", "no-poll",
    "local=/zone.test/", `pid-file=${join(dir, "pid")}`, "log-facility=-", ...records, ""].join("\n"));
  dnsmasq = Bun.spawn([DNSMASQ, "--keep-in-foreground", `--conf-file=${join(dir, "dnsmasq.conf")}`], { stdout: "ignore", stderr: "pipe" });
  // Ready when it answers (polled with a deadline).
  const deadline = performance.now() + 10_000;
  for (;;) {
    const r = await run([DIG, "@127.0.0.1", "-p", String(dnsPort), "+short", "+tries=1", "+time=1", "h0.zone.test"]);
    if (r.stdout.trim() === addressOf(0)) break;
    if (performance.now() > deadline || dnsmasq.exitCode !== null) {
      throw new Error(`dnsmasq did not answer: ${await new Response(dnsmasq.stderr as ReadableStream).text()}`);
    }
  }
});

afterAll(async () => {
  await stopAll();
  dnsmasq?.kill();
  await dnsmasq?.exited;
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test.skipIf(DIG === null || DNSMASQ === null)("1,000 dig queries from 20 source ports through a /udp route each get their own answer from dnsmasq", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/dns" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `dns=127.0.0.1:${dnsPort}/udp` });
  const route = srv.routePorts[0] as number;
  const per = NAMES / CLIENTS;
  const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const batch = join(dir, `batch-${c}`);
    writeFileSync(batch, Array.from({ length: per }, (_, k) => `h${c * per + k}.zone.test A\n`).join(""));
    const src = await freePort();
    return run([DIG as string, "@127.0.0.1", "-p", String(route), "-b", `127.0.0.1#${src}`, "+tries=3", "+time=3",
      "+noall", "+answer", "-f", batch], 120_000);
  }));
  const answers = new Map<string, string>();
  for (const r of results) {
    expect(r.code).toBe(0);
    for (const line of r.stdout.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f.length === 5 && f[3] === "A") answers.set((f[0] as string).replace(/\.$/, ""), f[4] as string);
    }
  }
  for (let i = 0; i < NAMES; i++) expect(answers.get(`h${i}.zone.test`)).toBe(addressOf(i));
  expect(answers.size).toBe(NAMES);
  // One flow per source port; every datagram went both ways.
  expect(srv.stats.streamsOpenedByRoute.get("edge/dns")).toBe(CLIENTS);
  const t = srv.stats.udp.tally("edge/dns");
  expect(t.datagramsUp).toBeGreaterThanOrEqual(NAMES);
  expect(t.datagramsDown).toBeGreaterThanOrEqual(NAMES);
}, 180_000);
