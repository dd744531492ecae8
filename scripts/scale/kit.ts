/**
 * What every scale scenario shares: the options, the processes started (cleaned up on exit), output, the server
 * command, the swarm's base plan, a fleet of the right size against a server, the descriptor limit and the
 * kernel's listen-queue overflow counter.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Children } from "../bench/processes.ts";
import { sourceCommand } from "../lib/roles.ts";
import { Fleet } from "./fleet.ts";
import type { ScaleOptions } from "./options.ts";
import { CLUSTER, SERVICE, type ScaleServer } from "./servers.ts";
import type { SwarmPlan } from "./swarm.ts";
import type { DnsTarget } from "./swarm-worker.ts";

/** The scale kit's run: options, children, output. */
export interface Kit {
  opts: ScaleOptions;
  kids: Children;
  /** Report lines (stdout, or stderr with --json). */
  out(s?: string): void;
  /** Progress lines (stderr). */
  progress(s: string): void;
  notes: string[];
}

/** How servers run: a compiled binary (--bin), another checkout (--src) or these sources. */
export function serverCommand(o: ScaleOptions): string[] {
  return o.bin ? [o.bin, "--mode=server"] : o.src ? [process.execPath, join(o.src, "src/main.ts"), "--mode=server"] : sourceCommand("server");
}

/** The swarm plan against `servers` (all but the agents, which the fleet deals out). */
export function basePlan(kit: Kit, servers: ScaleServer[], extra: Partial<SwarmPlan> = {}): Omit<SwarmPlan, "agents"> {
  const first = servers[0] as ScaleServer;
  return {
    seed: kit.opts.seed,
    tls: first.spec.tls,
    servers: servers.map((s) => ({ host: s.spec.host, port: s.spec.agentPort })),
    connsPerAgent: kit.opts.connsPerAgent,
    cluster: CLUSTER,
    credential: first.spec.secret,
    services: [SERVICE],
    window: 256 * 1024,
    reconnectBaseMs: 1_000,
    reconnectMaxMs: 30_000,
    connectTimeoutMs: 15_000,
    carryBytes: kit.opts.memoryStreamBytes,
    ...extra,
  };
}

/** Starts a fleet of enough agents for `connections` connections to each of `servers` (every agent dials at once). */
export async function startFleet(
  kit: Kit,
  servers: ScaleServer[],
  connections: number,
  opts: { prefix: string; connsPerAgent?: number; dns?: DnsTarget | null } = { prefix: "swarm" },
): Promise<Fleet> {
  const per = opts.connsPerAgent ?? kit.opts.connsPerAgent;
  return Fleet.start(kit.kids, {
    procs: kit.opts.procs,
    agents: Math.ceil(connections / per),
    prefix: opts.prefix,
    sources: kit.opts.sources,
    dns: opts.dns ?? null,
    plan: basePlan(kit, servers, { connsPerAgent: per }),
  });
}

/** The soft and hard limits on open files of this process. */
export function fdLimits(): { soft: number; hard: number } {
  const m = /Max open files\s+(\S+)\s+(\S+)/.exec(readFileSync("/proc/self/limits", "utf8"));
  const n = (v: string | undefined) => (v === "unlimited" || v === undefined ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * Raises this process's soft descriptor limit to its hard limit with `prlimit` (util-linux; Bun has no setrlimit),
 * so the servers and swarm processes it starts inherit it. Returns the soft limit in force afterwards.
 */
export function raiseFdLimit(): number {
  const { soft, hard } = fdLimits();
  if (soft >= hard) return soft;
  try {
    Bun.spawnSync(["prlimit", `--pid=${process.pid}`, `--nofile=${hard}:${hard}`], { stdout: "ignore", stderr: "ignore" });
  } catch {
    // no prlimit: the note in main.ts tells the operator to run ulimit -n
  }
  return fdLimits().soft;
}

/** The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows), or NaN. */
export function listenOverflows(): number {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n").filter((l) => l.startsWith("TcpExt:"));
    const names = (lines[0] ?? "").split(/\s+/);
    const values = (lines[1] ?? "").split(/\s+/);
    const i = names.indexOf("ListenOverflows");
    return i < 0 ? NaN : Number(values[i]);
  } catch {
    return NaN;
  }
}
