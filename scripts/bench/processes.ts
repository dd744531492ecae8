/**
 * The processes the benchmark measures and their cleanup: the target process (scripts/bench/target.ts), tunnel
 * pairs (a server and an agent, plaintext or TLS with throwaway certificates), and the two reference relays of
 * --ceiling (scripts/bench/relay.ts). Everything started is tracked so that an interrupt stops it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Subprocess } from "bun";
import { makeCa, makeLeaf } from "../lib/certs.ts";
import { rssKiB } from "../lib/proc.ts";
import { sourceCommand, spawnRole, type RoleProcess } from "../lib/roles.ts";
import type { Tracker } from "./extras.ts";
import type { BenchOptions } from "./options.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Everything the benchmark started: child processes, role processes and temp dirs. */
export class Children implements Tracker {
  private readonly procs = new Set<Subprocess>();
  private readonly roles = new Set<RoleProcess>();
  private readonly dirs: string[] = [];
  private cleaning: Promise<void> | null = null;

  add(p: Subprocess): void {
    this.procs.add(p);
  }
  delete(p: Subprocess): void {
    this.procs.delete(p);
  }
  tmpDir(d: string): void {
    this.dirs.push(d);
  }
  addRole(r: RoleProcess): void {
    this.roles.add(r);
  }
  deleteRole(r: RoleProcess): void {
    this.roles.delete(r);
  }

  /** Stops everything (roles gracefully, then SIGTERM, then SIGKILL after 2 s) and removes the temp dirs; once. */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([...this.roles].map((r) => r.stop(2_000).catch(() => {})));
      for (const c of this.procs) {
        if (c.exitCode === null) c.kill("SIGTERM");
      }
      await Promise.race([Promise.all([...this.procs].map((c) => c.exited)), sleep(2_000)]);
      for (const c of this.procs) if (c.exitCode === null) c.kill("SIGKILL");
      for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    })();
    return this.cleaning;
  }

  /** SIGKILLs whatever still runs (for process exit, where nothing can be awaited). */
  killAll(): void {
    for (const r of this.roles) if (r.proc.exitCode === null) r.proc.kill("SIGKILL");
    for (const c of this.procs) if (c.exitCode === null) c.kill("SIGKILL");
  }
}

/** The target's service ports (iperf: an iperf3 server, when installed). */
export interface Ports {
  sink: number;
  source: number;
  echo: number;
  http: number;
  iperf?: number;
}
/** One of the target's services. */
export type Service = keyof Ports;

/** The running target process. */
export interface Target {
  ports: Ports;
  pid: number;
  /** Its open sockets, asked over IPC. */
  active(): Promise<number>;
}

/** Starts the target process; resolves with its ports once it listens (throws after 10 s). */
export async function startTarget(kids: Children): Promise<Target> {
  let onPorts!: (p: Ports) => void;
  const portsP = new Promise<Ports>((r) => (onPorts = r));
  const waiting: ((n: number) => void)[] = [];
  const proc = Bun.spawn([process.execPath, new URL("./target.ts", import.meta.url).pathname], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(m: { type: string; ports?: Ports; active?: number }) {
      if (m.type === "ports" && m.ports) onPorts(m.ports);
      else if (m.type === "stats") waiting.shift()?.(m.active ?? 0);
    },
  });
  kids.add(proc);
  const ports = await Promise.race([
    portsP,
    sleep(10_000).then(() => {
      throw new Error("the target process did not start");
    }),
  ]);
  return {
    ports,
    pid: proc.pid,
    active: () =>
      new Promise<number>((r) => {
        waiting.push(r);
        proc.send({ type: "stats" });
      }),
  };
}

/** Waits until the target has at most `allowed` open sockets (the previous run is fully torn down). */
export async function quiesce(target: Target, allowed = 0): Promise<void> {
  const deadline = performance.now() + 10_000;
  while ((await target.active()) > allowed) {
    if (performance.now() > deadline) throw new Error("target still has open connections after 10 s");
    await sleep(10);
  }
}

/** A loopback port that was free a moment ago. */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

/** Server certificate, its key and the CA that signed it, as file paths. */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A throwaway CA and a server certificate for localhost / 127.0.0.1 (scripts/lib/certs.ts, the openssl CLI). */
export function makeTlsFiles(kids: Children): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), "backchannel-bench-"));
  kids.tmpDir(dir);
  const ca = makeCa(dir, "ca", "bench CA");
  const server = makeLeaf(dir, "server", ca, { cn: "localhost", san: ["DNS:localhost", "IP:127.0.0.1"], usage: "server", days: 2 });
  return { cert: server.cert, key: server.key, ca: ca.cert };
}

/** The two processes between visitor and target (server and agent, or the two reference relays). */
export interface Procs {
  /** [server, agent] (or [first relay, second relay]). */
  pids: [number, number];
  /** VmRSS when idle, KiB. */
  idleKiB: [number, number];
}

/** A running server + agent pair with a route per target service. */
export interface Pair extends Procs {
  name: string;
  server: RoleProcess;
  agent: RoleProcess;
  routes: Ports;
}

/** The command of one role: the compiled binary (--bin), another checkout (--src) or these sources. */
export type RoleCommand = (mode: "server" | "agent") => string[];

/** How the measured pairs run, from the options. */
export function roleCommand(o: BenchOptions): RoleCommand {
  return (mode) => (o.bin ? [o.bin, `--mode=${mode}`] : o.src ? [process.execPath, join(o.src, "src/main.ts"), `--mode=${mode}`] : sourceCommand(mode));
}

/** How the --baseline pair runs. */
export function baselineCommand(o: BenchOptions): RoleCommand {
  return (mode) => [process.execPath, join(o.baseline ?? ".", "src/main.ts"), `--mode=${mode}`];
}

/** One 1-byte echo through a port; false if the connection closed without it. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let ok = false;
    const t = setTimeout(() => resolve(false), 2_000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write("p"),
        data(s) {
          ok = true;
          s.end();
        },
        close() {
          clearTimeout(t);
          resolve(ok);
        },
        connectError() {
          clearTimeout(t);
          resolve(false);
        },
      },
    }).catch(() => resolve(false));
  });
}

/** What {@link startPair} needs besides the target. */
export interface PairSpec {
  name: string;
  tls: TlsFiles | null;
  command: RoleCommand;
  extraEnv: Record<string, string>;
  idleStreams: number;
  /** The port the agent dials instead of the server's own (e.g. an emulated WAN link in front of it). */
  via?: (serverPort: number) => Promise<number>;
}

/** Starts a server and an agent with a route per target service; resolves once 8 echoes in a row made it through. */
export async function startPair(kids: Children, target: Target, spec: PairSpec): Promise<Pair> {
  const { name, tls, command } = spec;
  const secret = randomBytes(18).toString("base64url");
  const services = Object.keys(target.ports) as Service[];
  const routes = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const agentPort = freePort();
  const common = {
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_MAX_STREAMS_PER_CONNECTION: String(2 * spec.idleStreams),
    TUNNEL_TLS: tls ? "on" : "off",
    ...spec.extraEnv,
  };
  const server = spawnRole(command("server"), {
    ...common,
    ...(tls ? { TUNNEL_TLS_CERT: tls.cert, TUNNEL_TLS_KEY: tls.key } : {}),
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_LISTEN: `127.0.0.1:${agentPort}`,
    TUNNEL_CLUSTERS: `bench=token:${secret}`,
    TUNNEL_ROUTES: services.map((s) => `127.0.0.1:${routes[s]}=bench/${s}`).join(","),
  });
  kids.addRole(server);
  const agent = spawnRole(command("agent"), {
    ...common,
    ...(tls ? { TUNNEL_TLS_CA: tls.ca, TUNNEL_TLS_SERVER_NAME: "localhost" } : {}),
    TUNNEL_SERVERS: `127.0.0.1:${spec.via ? await spec.via(agentPort) : agentPort}`,
    TUNNEL_CLUSTER: "bench",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_HOSTNAME: `bench-${name.replaceAll(" ", "-")}`,
    TUNNEL_SERVICES: services.map((s) => `${s}=127.0.0.1:${target.ports[s]}`).join(","),
  });
  kids.addRole(agent);
  // Ready when several echoes in a row make it through (both data connections are up by then).
  const deadline = performance.now() + 15_000;
  let streak = 0;
  while (streak < 8) {
    if (server.proc.exitCode !== null || agent.proc.exitCode !== null || performance.now() > deadline) {
      const last = [...server.lines, ...agent.lines].filter((l) => l.level !== "info").slice(-3);
      throw new Error(`${name} tunnel not ready: ${last.map((l) => `${l.msg ?? ""} ${l.reason ?? l.error ?? ""}`.trim()).join("; ") || "no echo through the route"}`);
    }
    streak = (await probe(routes.echo)) ? streak + 1 : 0;
    if (streak === 0) await sleep(50);
  }
  await quiesce(target);
  await sleep(300);
  return { name, server, agent, routes, pids: [server.proc.pid, agent.proc.pid], idleKiB: [rssKiB(server.proc.pid), rssKiB(agent.proc.pid)] };
}

/** Stops both processes of a pair. */
export async function stopPair(kids: Children, p: Pair): Promise<void> {
  await Promise.all([p.server.stop(3_000), p.agent.stop(3_000)]);
  kids.deleteRole(p.server);
  kids.deleteRole(p.agent);
}

/**
 * The reference path (--ceiling): two minimal relays (scripts/bench/relay.ts) chained in front of the target,
 * one process each, like server and agent but without framing, multiplexing or flow control.
 */
export async function startRelays(kids: Children, target: Target): Promise<{ ports: Ports; procs: Procs }> {
  const services = Object.keys(target.ports) as Service[];
  const first = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const second = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const relay = async (from: Ports, to: Ports) => {
    const args = services.map((s) => `${from[s]}:${to[s]}`);
    const p = Bun.spawn([process.execPath, new URL("./relay.ts", import.meta.url).pathname, ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
    });
    kids.add(p);
    const reader = p.stdout.getReader();
    const { value } = await reader.read();
    if (!new TextDecoder().decode(value).includes("ready")) throw new Error("relay did not start");
    reader.releaseLock();
    return p.pid;
  };
  // The visitor connects to the first relay, which forwards to the second, which forwards to the target.
  const b = await relay(second, target.ports);
  const a = await relay(first, second);
  await sleep(300);
  return { ports: first, procs: { pids: [a, b], idleKiB: [rssKiB(a), rssKiB(b)] } };
}
