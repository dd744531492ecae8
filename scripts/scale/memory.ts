/**
 * Memory: a plaintext server with `memoryConnections` swarm connections, settled, gives its idle-with-connections
 * RSS; then visitors each send `memoryStreamBytes` through the route (echoed back and verified), in rounds of one
 * visitor per connection until every connection carried at least that much (the server picks the connection, so
 * one round does not cover them all), at most 10 rounds. RSS is read at its peak, right after, and after
 * `restSeconds` idle: memory that returns comes back near the idle-with-connections level.
 */
import { rssKiB } from "../lib/proc.ts";
import { serverCommand, startFleet, type Kit } from "./kit.ts";
import { addVisits, noVisits, RssPeak, visitors, type VisitTally } from "./probes.ts";
import { serverSpec, startOnFreePorts, stopServer } from "./servers.ts";

/** The memory run's figures (MiB of VmRSS). */
export interface MemoryResult {
  connections: number;
  streamBytes: number;
  /** Connections that carried at least streamBytes. */
  carried: number;
  rounds: number;
  idleMiB: number;
  peakMiB: number;
  afterMiB: number;
  restedMiB: number;
  restSeconds: number;
  visitors: VisitTally;
}

const MiB = 1024 * 1024;

/** Mean RSS over three readings 200 ms apart, MiB. */
async function steadyRss(pid: number): Promise<number> {
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    sum += rssKiB(pid);
    await Bun.sleep(200);
  }
  return sum / 3 / 1024;
}

/** Runs the memory scenario. */
export async function runMemory(kit: Kit): Promise<MemoryResult> {
  const o = kit.opts;
  const spec = serverSpec(kit.kids, "127.0.0.1", false, serverCommand(o), o.serverEnv);
  const server = await startOnFreePorts(kit.kids, spec);
  kit.progress(`memory: ${o.memoryConnections} connections, ${o.memoryStreamBytes / MiB} MiB streams`);
  // One connection per agent: the server picks an agent, then one of its connections (not evenly), so with more
  // per agent some would never carry a stream.
  const fleet = await startFleet(kit, [server], o.memoryConnections, { prefix: "memory", connsPerAgent: 1 });
  const up = await fleet.waitFor((r) => r.registered >= r.slots, o.timeoutSeconds * 1000);
  if (!up.ok) kit.notes.push(`memory: only ${up.report.registered}/${up.report.slots} registered`);
  await Bun.sleep(2_000);
  const idleMiB = await steadyRss(server.pid);
  const peak = new RssPeak(server.pid);
  let tally = noVisits();
  let rounds = 0;
  let carried = 0;
  while (rounds < 10) {
    rounds++;
    const round = await visitors("127.0.0.1", spec.routePort, up.report.slots, { bytes: o.memoryStreamBytes, concurrency: 50, seed: o.seed * 10 + rounds });
    tally = addVisits(tally, round);
    carried = (await fleet.report()).carried;
    if (carried >= up.report.slots || round.ok === 0) break;
  }
  const peakMiB = peak.stop() / 1024;
  const afterMiB = rssKiB(server.pid) / 1024;
  kit.progress(`memory: ${carried}/${up.report.slots} connections carried a stream; resting ${o.restSeconds} s`);
  await Bun.sleep(o.restSeconds * 1000);
  const restedMiB = await steadyRss(server.pid);
  await fleet.stop();
  await stopServer(kit.kids, server);
  return { connections: up.report.slots, streamBytes: o.memoryStreamBytes, carried, rounds, idleMiB, peakMiB, afterMiB, restedMiB, restSeconds: o.restSeconds, visitors: tally };
}
