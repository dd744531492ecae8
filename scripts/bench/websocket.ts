/**
 * The WebSocket part of `npm run bench` (issue 17): single-stream throughput, up and down, over the TLS transport,
 * over wss:// straight to TUNNEL_WS_LISTEN (TLS at the server) and, with nginx installed, over wss:// through nginx
 * (TLS ended at nginx, deploy/nginx/backchannel.conf, upstream plaintext). Each path is its own agent process; the
 * TLS and direct-wss agents share one server process, the nginx agent has a server whose WebSocket listener is
 * plaintext. Paths interleaved, order rotated each round. Target: wss ≥ 0.8× TLS (median single-stream throughput).
 * `npm run bench -- --tests=ws` runs this part alone (besides the setup every run has).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nginxCommand, nginxConfig } from "../lib/nginx.ts";
import { spawnRole, type RoleProcess } from "../lib/roles.ts";
import { median } from "./figures.ts";
import { download, upload } from "./load.ts";
import { freePort, makeTlsFiles, quiesce, roleCommand, type Target, type TlsFiles } from "./processes.ts";
import type { TargetRow } from "./report.ts";
import type { Bench } from "./run.ts";

const HOST = "127.0.0.1";
const PATHS = ["TLS", "wss", "wss via nginx"] as const;
type PathName = (typeof PATHS)[number];

/** What the WebSocket run measured: figure → path → MB/s per round, and the errors. */
export interface WsFigures {
  results: Map<string, Map<PathName, number[]>>;
  errors: string[];
  /** Paths that ran (nginx only when installed). */
  paths: PathName[];
}

/** Route ports of one path: its sink (upload) and source (download). */
interface PathPorts {
  sink: number;
  source: number;
}

function nginxBinary(): string | null {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]) if (Bun.file(p).size > 0) return p;
  return null;
}

/** A server process with a route pair per cluster, and the agents' env to reach it. */
function spawnServer(b: Bench, tls: TlsFiles, clusters: string[], wsTls: boolean, secret: string) {
  const agentPort = freePort();
  const wsPort = freePort();
  const ports = Object.fromEntries(clusters.map((c) => [c, { sink: freePort(), source: freePort() }])) as Record<string, PathPorts>;
  const server = spawnRole(roleCommand(b.opts)("server"), {
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_TLS: "on",
    TUNNEL_TLS_CERT: tls.cert,
    TUNNEL_TLS_KEY: tls.key,
    TUNNEL_LISTEN: `${HOST}:${agentPort}`,
    TUNNEL_WS_LISTEN: `${HOST}:${wsPort}`,
    TUNNEL_WS_TLS: wsTls ? "on" : "off",
    TUNNEL_TRUSTED_PROXIES: HOST,
    TUNNEL_CLUSTERS: clusters.map((c) => `${c}=token:${secret}`).join(","),
    TUNNEL_ROUTES: clusters.flatMap((c) => [`${HOST}:${ports[c]?.sink}=${c}/sink`, `${HOST}:${ports[c]?.source}=${c}/source`]).join(","),
    ...b.opts.tunnelEnv,
  }, { keepLines: 100 });
  b.kids.addRole(server);
  return { server, agentPort, wsPort, ports };
}

function spawnAgent(b: Bench, target: Target, tls: TlsFiles, cluster: string, servers: string, secret: string): RoleProcess {
  const agent = spawnRole(roleCommand(b.opts)("agent"), {
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_TLS: "on",
    TUNNEL_TLS_CA: tls.ca,
    TUNNEL_TLS_SERVER_NAME: "localhost",
    TUNNEL_SERVERS: servers,
    TUNNEL_CLUSTER: cluster,
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_CONNECTIONS: "1",
    TUNNEL_HOSTNAME: `bench-${cluster}`,
    TUNNEL_SERVICES: `sink=${HOST}:${target.ports.sink},source=${HOST}:${target.ports.source}`,
    ...b.opts.tunnelEnv,
  }, { keepLines: 100 });
  b.kids.addRole(agent);
  return agent;
}

/** Starts nginx in front of `upstream`; resolves with its port once it accepts connections. */
async function startNginx(b: Bench, bin: string, tls: TlsFiles, upstream: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "backchannel-bench-nginx-"));
  b.kids.tmpDir(dir);
  const port = freePort();
  writeFileSync(join(dir, "conf"), nginxConfig(dir, port, { upstream, cert: tls.cert, key: tls.key }));
  const proc = Bun.spawn(nginxCommand(bin, dir), { stdout: "ignore", stderr: "ignore" });
  b.kids.add(proc);
  return port;
}

/** Ready when a short download through the path's source route moves bytes (retried for 15 s). */
async function waitPath(name: string, ports: PathPorts): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    const r = await download(ports.source, 1, 100).catch(() => null);
    if (r !== null && r.bytesPerSec > 0) return;
    await Bun.sleep(100);
  }
  throw new Error(`${name} path not ready`);
}

/** Runs the WebSocket part. Null when --tests leaves it out; failures are errors in the report. */
export async function runWs(b: Bench, target: Target): Promise<WsFigures | null> {
  if (b.opts.only && !b.opts.only.includes("ws")) return null;
  const f: WsFigures = { results: new Map(), errors: [], paths: [] };
  const record = (figure: string, path: PathName, v: number) => {
    const byPath = f.results.get(figure) ?? new Map<PathName, number[]>();
    f.results.set(figure, byPath);
    byPath.set(path, [...(byPath.get(path) ?? []), v]);
  };
  const ports = new Map<PathName, PathPorts>();
  const roles: RoleProcess[] = [];
  try {
    const tls = makeTlsFiles(b.kids);
    const secret = randomBytes(18).toString("base64url");
    const main = spawnServer(b, tls, ["tls", "wss"], true, secret);
    roles.push(main.server);
    roles.push(spawnAgent(b, target, tls, "tls", `${HOST}:${main.agentPort}`, secret));
    roles.push(spawnAgent(b, target, tls, "wss", `wss://${HOST}:${main.wsPort}/backchannel`, secret));
    ports.set("TLS", main.ports.tls as PathPorts);
    ports.set("wss", main.ports.wss as PathPorts);
    const bin = nginxBinary();
    if (bin === null) b.notes.push("ws: nginx not installed, the wss-via-nginx path is left out");
    else {
      const behind = spawnServer(b, tls, ["nginx"], false, secret);
      roles.push(behind.server);
      const nginxPort = await startNginx(b, bin, tls, behind.wsPort);
      roles.push(spawnAgent(b, target, tls, "nginx", `wss://${HOST}:${nginxPort}/backchannel`, secret));
      ports.set("wss via nginx", behind.ports.nginx as PathPorts);
    }
    for (const [name, p] of ports) await waitPath(name, p);
  } catch (e) {
    f.errors.push(`ws setup: ${(e as Error).message}`);
    await stopRoles(b, roles);
    return f;
  }
  f.paths = PATHS.filter((p) => ports.has(p));
  for (let round = 0; round < b.opts.rounds; round++) {
    for (let i = 0; i < f.paths.length; i++) {
      const path = f.paths[(i + round) % f.paths.length] as PathName;
      const p = ports.get(path) as PathPorts;
      try {
        await quiesce(target);
        record("1 stream download (MB/s)", path, (await download(p.source, 1, b.opts.throughputMs)).bytesPerSec / 1e6);
        await quiesce(target);
        record("1 stream upload (MB/s)", path, (await upload(p.sink, 1, b.opts.throughputMs)).bytesPerSec / 1e6);
      } catch (e) {
        f.errors.push(`ws round ${round + 1} ${path}: ${(e as Error).message}`);
      }
    }
    b.progress(`ws round ${round + 1}/${b.opts.rounds} done`);
  }
  await stopRoles(b, roles);
  return f;
}

async function stopRoles(b: Bench, roles: RoleProcess[]): Promise<void> {
  for (const r of roles) {
    await r.stop(3_000);
    b.kids.deleteRole(r);
  }
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : "–");

/** The WebSocket table (median (min–max) per path, ratios to TLS) and its errors; the target row. */
export function printWs(b: Bench, f: WsFigures | null): TargetRow[] {
  if (f === null) return [];
  b.out("\n## WebSocket transport: one stream over TLS, wss:// and wss:// through nginx (median (min–max) MB/s, ratio = path/TLS)\n");
  b.out(`| figure | ${f.paths.join(" | ")} | ${f.paths.slice(1).map((p) => `${p}/TLS`).join(" | ")} |`);
  b.out(`|---|${f.paths.map(() => "---|").join("")}${f.paths.slice(1).map(() => "---|").join("")}`);
  const cell = (v: number[] = []) => (v.length === 0 ? "–" : `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`);
  const ratios: number[] = [];
  for (const [figure, byPath] of f.results) {
    const tls = median(byPath.get("TLS") ?? []);
    const rs = f.paths.slice(1).map((p) => median(byPath.get(p) ?? []) / tls);
    ratios.push(rs[0] ?? NaN);
    b.out(`| ${figure} | ${f.paths.map((p) => cell(byPath.get(p))).join(" | ")} | ${rs.map((r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "–")).join(" | ")} |`);
  }
  for (const e of f.errors) b.out(`- error: ${e}`);
  const worst = ratios.length > 0 ? Math.min(...ratios) : NaN;
  return [{
    target: "wss single-stream throughput ≥ 0.80× the TLS transport's (worst of up and down)",
    value: Number.isFinite(worst) ? `${worst.toFixed(2)}×` : "not measured",
    met: Number.isFinite(worst) ? worst >= 0.8 : null,
  }];
}

/** The WebSocket figures for the JSON summary. */
export function wsSummary(f: WsFigures | null): Record<string, unknown> | null {
  if (f === null) return null;
  return { paths: f.paths, figures: Object.fromEntries([...f.results].map(([k, v]) => [k, Object.fromEntries(v)])), errors: f.errors };
}
