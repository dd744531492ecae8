/**
 * The multi-server simulation: five server processes on 127.0.0.11 … 127.0.0.15 (same ports on each address), a
 * loopback DNS responder that answers the servers' name with all five addresses (test/support/dns-responder.ts,
 * as the discovery tests use), and `multiAgents` swarm agents that find the servers the way an agent's
 * `TUNNEL_SERVER_DISCOVERY=dns:NAME:PORT` with `TUNNEL_DNS_SERVERS` does (each swarm process resolves the name
 * through the responder) and keep one connection to every server. Then:
 *   1. visitors on every server's route: all must be routed and echoed;
 *   2. once every connection has been up 10 s, one server is SIGKILLed: visitors on the other four must all still
 *      be routed;
 *   3. it is started again on the same addresses: the time until its connections are all back, then visitors on
 *      all five again.
 */
import { startDnsResponder } from "../../test/support/dns-responder.ts";
import { freePortOn, serverSpec, startServer, stopServer, type ScaleServer, type ServerSpec } from "./servers.ts";
import { serverCommand, startFleet, type Kit } from "./kit.ts";
import { addVisits, noVisits, visitors, type VisitTally } from "./probes.ts";
import { HEALTHY_MS, nowMs } from "./swarm.ts";

/** The multi-server run's figures. */
export interface MultiResult {
  servers: number;
  agents: number;
  /** Addresses the swarm resolved. */
  resolved: string[];
  connections: number;
  /** ms from the first dial until every connection to every server registered (NaN: not within the timeout). */
  allMs: number;
  before: VisitTally;
  /** Visitors on the four other servers while one is down. */
  during: VisitTally;
  /** ms from the restarted server's "listening" until all its connections registered again. */
  reregisterMs: number;
  after: VisitTally;
  /** Visitors per server over the three rounds (all must be routed). */
  perServer: number[];
}

export const MULTI_HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"];
const NAME = "servers.scale.test";

/** Visitors on the given servers' routes at once; per-server ok counts added to `perServer`. */
async function visitAll(kit: Kit, servers: (ScaleServer | null)[], perServer: number[], seed: number): Promise<VisitTally> {
  const rounds = await Promise.all(
    servers.map(async (s, i) => {
      if (s === null) return noVisits();
      const t = await visitors(s.spec.host, s.spec.routePort, kit.opts.multiVisitors, { bytes: 2048, concurrency: 8, seed: seed * 10 + i });
      perServer[i] = (perServer[i] ?? 0) + t.ok;
      return t;
    }),
  );
  return rounds.reduce(addVisits, noVisits());
}

/** Runs the multi-server simulation. */
export async function runMulti(kit: Kit): Promise<MultiResult> {
  const o = kit.opts;
  const [first, ...others] = MULTI_HOSTS as [string, ...string[]];
  const base = serverSpec(kit.kids, first, false, serverCommand(o), o.serverEnv);
  const ports = { agentPort: freePortOn(first, others), routePort: freePortOn(first, others), adminPort: freePortOn(first, others) };
  const specs: ServerSpec[] = MULTI_HOSTS.map((host) => ({ ...base, ...ports, host }));
  const dns = await startDnsResponder([...MULTI_HOSTS]);
  const servers: (ScaleServer | null)[] = await Promise.all(specs.map((s) => startServer(kit.kids, s)));
  const perServer = MULTI_HOSTS.map(() => 0);
  kit.progress(`multi: ${MULTI_HOSTS.length} servers, ${o.multiAgents} agents found by dns:${NAME}:${ports.agentPort}`);
  try {
    const fleet = await startFleet(kit, servers as ScaleServer[], o.multiAgents, {
      prefix: "multi",
      connsPerAgent: 1,
      dns: { name: NAME, port: ports.agentPort, resolver: `127.0.0.1:${dns.port}` },
    });
    const total = o.multiAgents * MULTI_HOSTS.length;
    const up = await fleet.waitFor((r) => r.registered >= total, o.timeoutSeconds * 1000);
    const firstLast = (await fleet.report(true)).registrations.at(-1);
    const allMs = up.ok && firstLast !== undefined ? firstLast - fleet.startedAt : NaN;
    await fleet.mark();
    if (!up.ok) kit.notes.push(`multi: ${up.report.registered}/${total} connections registered (${fleet.servers.length} servers resolved)`);
    const before = await visitAll(kit, servers, perServer, 1);
    // As in a fleet that has run a while: every connection up HEALTHY_MS before the kill (redials from the base).
    await Bun.sleep(Math.max(0, (firstLast ?? 0) + HEALTHY_MS + 500 - nowMs()));

    const victim = 2;
    kit.progress(`multi: SIGKILL the server on ${MULTI_HOSTS[victim]}`);
    await stopServer(kit.kids, servers[victim] as ScaleServer, "SIGKILL");
    servers[victim] = null;
    const during = await visitAll(kit, servers, perServer, 2);
    const restarted = await startServer(kit.kids, specs[victim] as ServerSpec);
    servers[victim] = restarted;
    await fleet.waitFor((r) => r.registered >= total, o.timeoutSeconds * 1000);
    const report = await fleet.report(true);
    const lastMs = report.registrations.at(-1);
    const reregisterMs = report.registered >= total && lastMs !== undefined ? lastMs - restarted.listeningAt : NaN;
    const after = await visitAll(kit, servers, perServer, 3);
    await fleet.stop();
    return { servers: MULTI_HOSTS.length, agents: o.multiAgents, resolved: fleet.servers.map((s) => s.host), connections: total, allMs, before, during, reregisterMs, after, perServer };
  } finally {
    dns.stop();
    await Promise.all(servers.map((s) => (s ? stopServer(kit.kids, s) : undefined)));
  }
}
