/**
 * Restart: a server with every swarm connection registered (and up 10 s, so that, as in a fleet that has run a
 * while, a lost connection redials from the base backoff) gets SIGTERM and a new server process is started on the
 * same agent and route ports at once (tried again every 20 ms while the old one still holds them; with SO_REUSEPORT
 * the first try binds; the admin endpoint gets a port of its own, so that readiness is the new process's). Measured: when the new process listens and the old one exits, the time from the SIGTERM until 99% (and
 * all) of the connections registered again, the refusals met, and visitors sent through the route all along
 * (small echoes on four lanes): how many were refused at connect, accepted but not routed, or broken.
 */
import { serverCommand, startFleet, type Kit } from "./kit.ts";
import { VisitorLoad, type VisitTally } from "./probes.ts";
import { lastProblems, serverSpec, startOnFreePorts, startServerRetrying, stopServer } from "./servers.ts";
import { HEALTHY_MS, nowMs } from "./swarm.ts";

/** The restart's figures (ms from the SIGTERM). */
export interface RestartResult {
  transport: "plaintext" | "tls";
  connections: number;
  newListeningMs: number;
  /** Processes started until one listened (1: the first bound at once). */
  attempts: number;
  oldExitMs: number;
  p99Ms: number;
  allMs: number;
  lost: number;
  busy: number;
  bareCloses: number;
  connectErrors: number;
  visitors: VisitTally;
}

/** Runs the restart scenario for one transport. */
export async function runRestart(kit: Kit, transport: "plaintext" | "tls"): Promise<RestartResult> {
  const o = kit.opts;
  const spec = serverSpec(kit.kids, "127.0.0.1", transport === "tls", serverCommand(o), o.serverEnv);
  const old = await startOnFreePorts(kit.kids, spec);
  kit.progress(`restart (${transport}): ${o.connections.toLocaleString("en-US")} connections`);
  const fleet = await startFleet(kit, [old], o.connections, { prefix: `restart-${transport}` });
  const up = await fleet.waitFor((r) => r.registered >= r.slots, o.timeoutSeconds * 1000);
  if (!up.ok) kit.notes.push(`restart (${transport}): only ${up.report.registered}/${up.report.slots} registered before the SIGTERM`);
  // A fleet that has run a while: every connection up HEALTHY_MS, so a lost one redials from the base backoff.
  const lastUp = (await fleet.report(true)).registrations.at(-1) ?? nowMs();
  await Bun.sleep(Math.max(0, lastUp + HEALTHY_MS + 500 - nowMs()));
  const load = new VisitorLoad("127.0.0.1", spec.routePort, { bytes: 1024, concurrency: 4, seed: o.seed + 7, gapMs: 10 });
  await Bun.sleep(500);
  await fleet.mark();
  const t0 = nowMs();
  old.role.proc.kill("SIGTERM");
  let oldExitMs = NaN;
  const oldGone = old.role.proc.exited.then(() => (oldExitMs = nowMs() - t0));
  // Same agent and route ports; its own admin port, so that its /healthz (how readiness shows) is not the old one's.
  const { server: fresh, attempts } = await startServerRetrying(kit.kids, spec, o.timeoutSeconds * 1000);
  const slots = up.report.slots;
  const need = Math.ceil(slots * 0.99);
  const back = await fleet.waitFor((r) => r.registeredSinceMark >= slots && r.registered >= slots, o.timeoutSeconds * 1000);
  const report = await fleet.report(true);
  await Bun.sleep(500);
  const visitors = await load.stop();
  await oldGone;
  if (!back.ok) kit.notes.push(`restart (${transport}): ${report.registered}/${slots} registered again after ${o.timeoutSeconds} s; new server: ${lastProblems(fresh).join("; ")}`);
  const at = (k: number) => (report.registrations.length >= k ? (report.registrations[k - 1] as number) - t0 : NaN);
  await fleet.stop();
  await stopServer(kit.kids, fresh);
  kit.kids.deleteRole(old.role);
  return {
    transport,
    connections: slots,
    newListeningMs: fresh.listeningAt - t0,
    attempts,
    oldExitMs,
    p99Ms: at(need),
    allMs: at(slots),
    lost: report.lost,
    busy: report.busy,
    bareCloses: report.bareCloses,
    connectErrors: report.connectErrors,
    visitors,
  };
}
