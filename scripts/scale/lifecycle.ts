/**
 * Storm, steady and teardown on one server per transport (they are three moments of one life):
 * - storm: every swarm connection dials a fresh server at the same moment; the time until all (and 99%) are
 *   registered, and the refusals each connection met on the way (SERVER_BUSY, closes before a response, dial
 *   errors, timeouts), plus the kernel's listen-queue overflows meanwhile;
 * - steady: with all connected and settled, the server's RSS and descriptors, /api/status, /metrics and /healthz
 *   latency and size, visitors (4 KiB echoed each, verified) through the route, and the RSS after those;
 * - teardown: every connection drops at once (the swarm processes are SIGKILLed); the server's CPU seconds until
 *   its descriptors are back to the idle count, and /healthz latency meanwhile (asked back to back).
 */
import { cpuSeconds, openFds, rssKiB } from "../lib/proc.ts";
import { listenOverflows, serverCommand, startFleet, type Kit } from "./kit.ts";
import { HealthProber, timedGets, visitors, type VisitTally } from "./probes.ts";
import { lastProblems, serverSpec, startOnFreePorts, stopServer } from "./servers.ts";
import type { SwarmReport } from "./swarm.ts";

/** The storm's figures. */
export interface StormResult {
  connections: number;
  registered: number;
  /** ms from the first dial until every connection was registered (NaN: not within the timeout). */
  allMs: number;
  p99Ms: number;
  /** Most refusals one connection met; connections refused more than twice. */
  maxRefusals: number;
  overTwice: number;
  busy: number;
  bareCloses: number;
  connectErrors: number;
  timeouts: number;
  failures: number;
  listenOverflows: number;
}

/** The steady state's figures. */
export interface SteadyResult {
  registered: number;
  /** Settled, before the admin requests; and after them and the visitors. */
  rssMiB: number;
  rssAfterAdminMiB: number;
  idleRssMiB: number;
  fds: number;
  status: { medianMs: number; maxMs: number; bytes: number };
  metrics: { medianMs: number; maxMs: number; bytes: number; lines: number };
  healthzMs: number;
  visitors: VisitTally;
}

/** The teardown's figures. */
export interface TeardownResult {
  cpuSeconds: number;
  /** ms until the server's descriptors were back to idle (NaN: not within the timeout). */
  cleanupMs: number;
  healthzMaxMs: number;
  healthzP99Ms: number;
  healthzCount: number;
  healthzFailures: number;
}

/** One transport's run. */
export interface LifecycleResult {
  transport: "plaintext" | "tls";
  storm: StormResult;
  steady: SteadyResult | null;
  teardown: TeardownResult | null;
}

/** The storm's figures from a full report taken since the dial. */
export function stormFigures(r: SwarmReport, startedAt: number, overflows: number): StormResult {
  const at = (k: number) => (r.registrations.length >= k && k > 0 ? (r.registrations[k - 1] as number) - startedAt : NaN);
  const maxRefusals = r.refusalHistogram.reduce((m, n, i) => (n > 0 ? i : m), 0);
  return {
    connections: r.slots,
    registered: r.registered,
    allMs: r.registered >= r.slots ? at(r.slots) : NaN,
    p99Ms: at(Math.ceil(r.slots * 0.99)),
    maxRefusals,
    overTwice: r.refusalHistogram.slice(3).reduce((a, b) => a + b, 0),
    busy: r.busy,
    bareCloses: r.bareCloses,
    connectErrors: r.connectErrors,
    timeouts: r.timeouts,
    failures: r.failures,
    listenOverflows: overflows,
  };
}

/** Runs storm → steady → teardown against a fresh server of `transport`. */
export async function runLifecycle(kit: Kit, transport: "plaintext" | "tls"): Promise<LifecycleResult> {
  const o = kit.opts;
  const spec = serverSpec(kit.kids, "127.0.0.1", transport === "tls", serverCommand(o), o.serverEnv);
  const server = await startOnFreePorts(kit.kids, spec);
  await Bun.sleep(300);
  const idleFds = openFds(server.pid) ?? 0;
  const idleRssMiB = rssKiB(server.pid) / 1024;
  kit.progress(`${transport}: ${o.connections.toLocaleString("en-US")} connections dial at once`);
  const overflows0 = listenOverflows();
  const fleet = await startFleet(kit, [server], o.connections, { prefix: `storm-${transport}` });
  const waited = await fleet.waitFor((r) => r.registered >= r.slots, o.timeoutSeconds * 1000, 100);
  const storm = stormFigures(await fleet.report(true), fleet.startedAt, listenOverflows() - overflows0);
  if (!waited.ok) kit.notes.push(`${transport} storm: ${storm.registered}/${storm.connections} registered after ${o.timeoutSeconds} s; server: ${lastProblems(server).join("; ")}`);
  for (const e of waited.report.errors) kit.notes.push(`${transport} swarm: ${e}`);
  kit.progress(`${transport}: storm done (${storm.registered} registered); steady state`);

  let steady: SteadyResult | null = null;
  if (o.scenarios.has("steady")) {
    await Bun.sleep(o.quick ? 1_000 : 3_000);
    // RSS before the admin requests: rendering /metrics and /api/status at this size allocates megabytes.
    const rssMiB = rssKiB(server.pid) / 1024;
    const status = await timedGets(`${server.adminUrl}/api/status`, 3);
    const metrics = await timedGets(`${server.adminUrl}/metrics`, 3);
    const metricsText = await fetch(`${server.adminUrl}/metrics`).then((r) => r.text()).catch(() => "");
    const healthz = await timedGets(`${server.adminUrl}/healthz`, 5);
    const v = await visitors("127.0.0.1", spec.routePort, o.visitors, { bytes: 4096, concurrency: 16, seed: o.seed });
    steady = {
      registered: (await fleet.report()).registered,
      rssMiB,
      rssAfterAdminMiB: rssKiB(server.pid) / 1024,
      idleRssMiB,
      fds: openFds(server.pid) ?? 0,
      status,
      metrics: { ...metrics, lines: metricsText.split("\n").length - 1 },
      healthzMs: healthz.medianMs,
      visitors: v,
    };
  }

  let teardown: TeardownResult | null = null;
  if (o.scenarios.has("teardown")) {
    kit.progress(`${transport}: teardown (every connection drops at once)`);
    teardown = await dropAll(kit, server.pid, server.adminUrl, idleFds, () => fleet.kill());
  } else {
    await fleet.stop();
  }
  await stopServer(kit.kids, server);
  return { transport, storm, steady, teardown };
}

/**
 * Drops every connection (`drop`) and measures the server's cleanup: CPU seconds from the drop until its
 * descriptors are within 16 of `idleFds` plus half a second, and /healthz meanwhile.
 */
export async function dropAll(kit: Kit, pid: number, adminUrl: string, idleFds: number, drop: () => Promise<void>): Promise<TeardownResult> {
  const prober = new HealthProber(adminUrl, 5);
  await Bun.sleep(200);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await drop();
  const deadline = t0 + kit.opts.timeoutSeconds * 1000;
  let cleanupMs = NaN;
  while (performance.now() < deadline) {
    if ((openFds(pid) ?? 0) <= idleFds + 16) {
      cleanupMs = performance.now() - t0;
      break;
    }
    await Bun.sleep(20);
  }
  await Bun.sleep(500);
  const cpu = cpuSeconds(pid) - cpu0;
  const h = await prober.stop();
  if (!Number.isFinite(cleanupMs)) kit.notes.push(`teardown: the server still had ${openFds(pid)} descriptors after ${kit.opts.timeoutSeconds} s (idle ${idleFds})`);
  return { cpuSeconds: cpu, cleanupMs, healthzMaxMs: h.maxMs, healthzP99Ms: h.p99Ms, healthzCount: h.count, healthzFailures: h.failures };
}
