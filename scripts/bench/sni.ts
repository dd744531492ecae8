/**
 * The routing-by-name part of `npm run bench` (issue 18): new connections per second and 1 KiB echo round trips
 * through an `sni` route beside a plain route of the same server + agent pair, paths interleaved like the rest.
 *
 * The visitor of both routes sends the same first bytes: a 517-byte TLS ClientHello naming `app.example.com` (the
 * size curl sends), which the target's echo service sends back. So the two paths differ only in the server reading
 * the ClientHello and picking the route; TLS itself, end to end between visitor and service, costs the same
 * through either route and is left out. Target: the sni route's connection rate ≥ 0.9× the plain route's.
 * `npm run bench -- --tests=sni` runs this part alone (besides the setup every run has).
 */
import type { Socket } from "bun";
import { randomBytes } from "node:crypto";
import { rssKiB } from "../lib/proc.ts";
import { spawnRole, startServerProcess, type RoleProcess } from "../lib/roles.ts";
import { median } from "./figures.ts";
import { CONN_WORKERS } from "./options.ts";
import { quiesce, roleCommand, type Target } from "./processes.ts";
import type { TargetRow } from "./report.ts";
import type { Bench } from "./run.ts";

const HOST = "127.0.0.1";
const NAME = "app.example.com";
const PATHS = ["plain route", "sni route"] as const;
type PathName = (typeof PATHS)[number];

/** What the sni run measured: figure → path → one value per round, and the errors of failed runs. */
export interface SniFigures {
  results: Map<string, Map<PathName, number[]>>;
  errors: string[];
  /** The pair's RSS at rest after the runs, KiB [server, agent]. */
  restKiB: [number, number] | null;
}

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];

/** A TLS 1.3-style ClientHello record of 517 bytes naming `name` (random, session id, suites, SNI, padding). */
export function benchClientHello(name: string): Uint8Array {
  const host = [...new TextEncoder().encode(name)];
  const sni = [0, 0, ...u16(host.length + 5), ...u16(host.length + 3), 0, ...u16(host.length), ...host];
  const head = [3, 3, ...randomBytes(32), 32, ...randomBytes(32), ...u16(6), 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 1, 0];
  const pad = 517 - 5 - 4 - head.length - 2 - sni.length - 4;
  const exts = [...sni, 0, 21, ...u16(pad), ...new Array<number>(pad).fill(0)];
  const body = [...head, ...u16(exts.length), ...exts];
  const msg = [1, 0, ...u16(body.length), ...body];
  return Uint8Array.from([0x16, 3, 1, ...u16(msg.length), ...msg]);
}

/** A server with a plain route and three sni routes (one listener) to the target, and its agent. */
async function startSniPair(b: Bench, target: Target): Promise<{ roles: RoleProcess[]; ports: Record<PathName, number> }> {
  const cmd = roleCommand(b.opts);
  const secret = randomBytes(18).toString("base64url");
  const common = { TUNNEL_LOG_LEVEL: "warn", TUNNEL_TLS: "off", ...b.opts.tunnelEnv };
  const { role: server, agentPort, routePorts } = await startServerProcess(cmd("server"), {
    ...common,
    TUNNEL_LOG_LEVEL: "info", // "server listening" names the bound ports
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_LISTEN: `${HOST}:0`,
    TUNNEL_CLUSTERS: `bench=token:${secret}`,
    TUNNEL_ROUTES: [`${HOST}:0=bench/echo`, `${HOST}:0=bench/echo;sni=${NAME}`, `${HOST}:0=bench/sink;sni=*.example.org`,
      `${HOST}:0=bench/http;sni=www.example.net`].join(","),
  }, { keepLines: 100 });
  b.kids.addRole(server);
  const agent = spawnRole(cmd("agent"), {
    ...common,
    TUNNEL_SERVERS: `${HOST}:${agentPort}`,
    TUNNEL_CLUSTER: "bench",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_HOSTNAME: "bench-sni",
    TUNNEL_SERVICES: `echo=${HOST}:${target.ports.echo},sink=${HOST}:${target.ports.sink},http=${HOST}:${target.ports.http}`,
  }, { keepLines: 100 });
  b.kids.addRole(agent);
  const ports = { "plain route": routePorts[0] as number, "sni route": routePorts[1] as number };
  // Ready when 8 visitors in a row were echoed through each route (both data connections are up by then).
  const hello = benchClientHello(NAME);
  const deadline = performance.now() + 15_000;
  for (const p of PATHS) {
    for (let streak = 0; streak < 8; ) {
      if (performance.now() > deadline) throw new Error(`sni bench pair not ready (${p})`);
      streak = (await oneConnection(ports[p], hello, new Uint8Array(0))) ? streak + 1 : 0;
      if (streak === 0) await Bun.sleep(50);
    }
  }
  await quiesce(target);
  return { roles: [server, agent], ports };
}

/** connect → `hello` + `request` → their echo → FIN both ways; true if it all came back. */
function oneConnection(port: number, hello: Uint8Array, request: Uint8Array): Promise<boolean> {
  const want = hello.length + request.length;
  return new Promise<boolean>((resolve) => {
    let got = 0;
    Bun.connect({
      hostname: HOST,
      port,
      allowHalfOpen: true,
      socket: {
        binaryType: "uint8array",
        open(s) {
          s.write(hello);
          if (request.length > 0) s.write(request);
        },
        data(s, chunk: Uint8Array) {
          got += chunk.byteLength;
          if (got >= want) s.end();
        },
        close(_s, err) {
          resolve(got >= want && !err);
        },
        connectError() {
          resolve(false);
        },
      },
    }).catch(() => resolve(false));
  });
}

/** New connections per second: `workers` loops of {@link oneConnection} with a 1 KiB request, for `ms`. */
async function connRate(port: number, hello: Uint8Array, workers: number, ms: number): Promise<{ perSec: number; failed: number }> {
  const request = randomBytes(1024);
  let completed = 0;
  let failed = 0;
  const t0 = performance.now();
  const endAt = t0 + ms;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (performance.now() < endAt) {
      if (await oneConnection(port, hello, request)) completed++;
      else failed++;
    }
  }));
  return { perSec: (completed / (performance.now() - t0)) * 1000, failed };
}

/** 1 KiB closed-loop echo round trips (µs) on one connection that first sent `hello`; 200 warm-up requests. */
async function rtt(port: number, hello: Uint8Array, ms: number): Promise<{ p50: number; p99: number }> {
  const request = randomBytes(1024);
  const samples: number[] = [];
  let want = hello.length;
  let got = 0;
  let warm = 200;
  let sentAt = 0;
  let endAt = Infinity;
  return new Promise((resolve, reject) => {
    const send = (s: Socket<undefined>) => {
      got = 0;
      want = request.length;
      sentAt = performance.now();
      s.write(request);
    };
    Bun.connect({
      hostname: HOST,
      port,
      allowHalfOpen: true,
      socket: {
        binaryType: "uint8array",
        open(s) {
          s.setNoDelay(true);
          s.write(hello);
        },
        data(s, chunk: Uint8Array) {
          got += chunk.byteLength;
          if (got < want) return;
          const now = performance.now();
          if (want === request.length && warm-- <= 0) {
            if (endAt === Infinity) endAt = now + ms;
            samples.push((now - sentAt) * 1000);
          }
          if (now < endAt) return send(s);
          const sorted = samples.sort((a, c) => a - c);
          resolve({ p50: sorted[Math.floor(sorted.length * 0.5)] ?? NaN, p99: sorted[Math.floor(sorted.length * 0.99)] ?? NaN });
          s.end();
        },
        close(_s, err) {
          reject(new Error(`echo connection closed early${err ? `: ${String(err)}` : ""}`));
        },
      },
    }).catch(reject);
  });
}

/**
 * Runs the sni part: its own pair, `rounds` rounds of connection rate and RTT on both routes (order rotated), then
 * stops the pair. Null when --tests leaves it out. Failed runs are errors in the report, not the end.
 */
export async function runSni(b: Bench, target: Target): Promise<SniFigures | null> {
  if (b.opts.only && !b.opts.only.includes("sni")) return null;
  const f: SniFigures = { results: new Map(), errors: [], restKiB: null };
  const record = (figure: string, path: PathName, v: number) => {
    const byPath = f.results.get(figure) ?? new Map<PathName, number[]>();
    f.results.set(figure, byPath);
    byPath.set(path, [...(byPath.get(path) ?? []), v]);
  };
  let pair: Awaited<ReturnType<typeof startSniPair>>;
  try {
    pair = await startSniPair(b, target);
  } catch (e) {
    f.errors.push(`sni: ${(e as Error).message}`);
    return f;
  }
  const hello = benchClientHello(NAME);
  for (let round = 0; round < b.opts.rounds; round++) {
    for (let i = 0; i < PATHS.length; i++) {
      const path = PATHS[(i + round) % PATHS.length] as PathName;
      try {
        await quiesce(target);
        const c = await connRate(pair.ports[path], hello, CONN_WORKERS, b.opts.connMs);
        record(`new connections/s (${CONN_WORKERS} workers, ClientHello + 1 KiB echo)`, path, c.perSec);
        if (c.failed > 0) f.errors.push(`sni ${path}: ${c.failed} new connections failed`);
        await quiesce(target);
        const r = await rtt(pair.ports[path], hello, b.opts.rrMs);
        record("echo 1 KiB closed loop after the ClientHello: p50 (µs)", path, r.p50);
        record("echo 1 KiB closed loop after the ClientHello: p99 (µs)", path, r.p99);
      } catch (e) {
        f.errors.push(`sni round ${round + 1} ${path}: ${(e as Error).message}`);
      }
    }
    b.progress(`sni round ${round + 1}/${b.opts.rounds} done`);
  }
  f.restKiB = [rssKiB(pair.roles[0]?.proc.pid ?? 0), rssKiB(pair.roles[1]?.proc.pid ?? 0)];
  for (const r of pair.roles) {
    await r.stop(3_000);
    b.kids.deleteRole(r);
  }
  return f;
}

const fmt = (v: number) => (!Number.isFinite(v) ? "–" : v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1));

/** The sni table (median (min–max) per route, ratio sni/plain) and its errors; the target rows. */
export function printSni(b: Bench, f: SniFigures | null): TargetRow[] {
  if (f === null) return [];
  b.out("\n## Routing by name: an sni route beside a plain route (same pair; median (min–max), ratio = sni/plain)\n");
  b.out("| figure | plain route | sni route | ratio |\n|---|---|---|---|");
  const cell = (v: number[] = []) => (v.length === 0 ? "–" : `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`);
  for (const [figure, byPath] of f.results) {
    const ratio = median(byPath.get("sni route") ?? []) / median(byPath.get("plain route") ?? []);
    b.out(`| ${figure} | ${cell(byPath.get("plain route"))} | ${cell(byPath.get("sni route"))} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : "–"} |`);
  }
  for (const e of f.errors) b.out(`- error: ${e}`);
  const conn = [...f.results].find(([k]) => k.startsWith("new connections/s"))?.[1];
  const ratio = conn ? median(conn.get("sni route") ?? []) / median(conn.get("plain route") ?? []) : NaN;
  return [{
    target: "sni route new connections/s ≥ 0.90× the plain route's",
    value: Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : "not measured",
    met: Number.isFinite(ratio) ? ratio >= 0.9 : null,
  }];
}

/** The sni figures for the JSON summary. */
export function sniSummary(f: SniFigures | null): Record<string, unknown> | null {
  if (f === null) return null;
  const figures = Object.fromEntries([...f.results].map(([k, v]) => [k, Object.fromEntries(v)]));
  return { figures, errors: f.errors, restKiB: f.restKiB };
}
