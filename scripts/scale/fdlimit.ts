/**
 * At the descriptor limit: a plaintext server started under a low open-files limit (`prlimit --nofile`, default
 * 1,024) while more swarm connections than that dial it (the limit plus a quarter). Over the next seconds: how many
 * registered, /healthz asked back to back (its latency, and answers that failed), the server's CPU use (a process
 * that spins on accept shows ~100%), what the swarm met (refusals by kind), and the server's own count of refused
 * connections when its /metrics has one (any counter whose name speaks of refused or rejected connections).
 */
import { cpuSeconds } from "../lib/proc.ts";
import { serverCommand, startFleet, type Kit } from "./kit.ts";
import { HealthProber } from "./probes.ts";
import { serverSpec, startOnFreePorts, stopServer } from "./servers.ts";

/** The descriptor-limit run's figures. */
export interface FdLimitResult {
  limit: number;
  dialled: number;
  registered: number;
  healthzMaxMs: number;
  healthzP99Ms: number;
  healthzCount: number;
  healthzFailures: number;
  /** Server CPU over the window, % of one core. */
  cpuPercent: number;
  busy: number;
  bareCloses: number;
  timeouts: number;
  /** The server's counter of refused connections (sum of its samples), or null if /metrics has none. */
  counted: number | null;
  counter: string | null;
}

/** Sum of the samples of the first counter whose name looks like refused/rejected connections, with its name. */
export function refusedCounter(metrics: string): { name: string; value: number } | null {
  let name: string | null = null;
  let value = 0;
  for (const line of metrics.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const metric = m[1] as string;
    // A limit counter labelled for connections (the server's backchannel_server_limit_hits_total{limit="connections"}).
    const limitHits = /limit_hits/.test(metric) && /limit="connections"/.test(m[2] ?? "");
    if (!limitHits && (!/connection/.test(metric) || !/(refus|reject|over_limit|cap)/.test(metric))) continue;
    if (name !== null && metric !== name) continue;
    name = metric;
    value += Number(m[3]);
  }
  return name === null ? null : { name, value };
}

/** Runs the descriptor-limit scenario with `limit` open files for the server. */
export async function runFdLimit(kit: Kit, limit: number): Promise<FdLimitResult> {
  const o = kit.opts;
  const spec = serverSpec(kit.kids, "127.0.0.1", false, ["prlimit", `--nofile=${limit}:${limit}`, "--", ...serverCommand(o)], o.serverEnv);
  const server = await startOnFreePorts(kit.kids, spec);
  const dialled = Math.ceil((limit * 1.25) / o.connsPerAgent) * o.connsPerAgent;
  kit.progress(`fd limit: ${dialled} connections against a server limited to ${limit} descriptors`);
  // A keep-alive connection for the prober is open before the limit is reached.
  const prober = new HealthProber(server.adminUrl, 5);
  await Bun.sleep(300);
  const fleet = await startFleet(kit, [server], dialled, { prefix: "fdlimit" });
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  await Bun.sleep(o.quick ? 4_000 : 8_000);
  const cpuPercent = ((cpuSeconds(server.pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
  const h = await prober.stop();
  const report = await fleet.report();
  const metrics = await fetch(`${server.adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text()).catch(() => "");
  const counter = refusedCounter(metrics);
  await fleet.stop();
  await stopServer(kit.kids, server, "SIGTERM", 5_000);
  return {
    limit,
    dialled: report.slots,
    registered: report.registered,
    healthzMaxMs: h.maxMs,
    healthzP99Ms: h.p99Ms,
    healthzCount: h.count,
    healthzFailures: h.failures,
    cpuPercent,
    busy: report.busy,
    bareCloses: report.bareCloses,
    timeouts: report.timeouts,
    counted: counter?.value ?? null,
    counter: counter?.name ?? null,
  };
}
