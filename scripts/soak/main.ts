/**
 * Soak and chaos (issue 9, reliability.md R1–R4, R9): `npm run soak -- --minutes N`.
 *
 * Two servers and several agents (each with several data connections to both servers) run from source as their
 * own processes; every agent connection goes through a fault-injecting proxy (scripts/soak/proxy.ts, one per
 * server). A population of visitors opens streams of random sizes (0 B–16 MiB, log-uniform, so most are small)
 * to a soak target (scripts/soak/target.ts, its own process) with random half-closes on both sides, slow
 * readers and deliberate resets; every byte both ways is generated from a seed and checked at the receiver without
 * being stored (test/support/pattern.ts). Beside them, UDP visitors send seeded datagrams through each server's /udp
 * route to an echo (scripts/soak/udp.ts): every datagram that comes back must be whole, byte-exact and come back once. Meanwhile faults fire on a seeded schedule: cut a connection (RST),
 * blackhole one (both ways or one way, for good), add latency, stall one for less than the liveness timeout,
 * SIGKILL a server and restart it on the same ports, SIGTERM an agent (graceful drain) and restart it.
 *
 * Every minute the load pauses at a checkpoint: streams finish, faults heal, every agent reconnects, and the soak
 * samples descriptors (/proc/<pid>/fd) and RSS of every process while nothing is in flight, so the samples are
 * comparable over time. The first checkpoint (after a warm-up of 30% of the run, 15–60 s, with faults already
 * firing so that fault-handling code is warm too) is the baseline; a restarted process's baseline is its first
 * checkpoint after 15 s of load (a process restarted too late for one is compared with its predecessor's).
 * Server-0 and agent-1 are never restarted (unless --restart-all), so their figures span the whole run; their
 * connections still get cut, blackholed and delayed. Before sampling, every process runs a full GC (servers and agents through the hidden
 * BACKCHANNEL_DEBUG_GC_SIGNAL=SIGUSR2 hook in src/main.ts, the target over IPC): without it RSS at rest varied by
 * ±10% with garbage awaiting a collection, as much as the bound being checked; with it, by about ±2%.
 *
 * A stream passes if both ends saw exactly their bytes, a clean end, and the FINs they were promised. Any other
 * outcome is a failure, and a failure must be explained by a fault on its path (the rule, also in RELIABILITY.md):
 *   1. its server's access-log line (matched by the visitor's local port; by time for a visitor whose connect
 *      failed before it learned its port) names a connection id that the proxy saw cut or blackholed before the
 *      stream ended (the proxy reads the id from the handshake response it forwards); or
 *   2. that line names an agent that was SIGTERMed (draining) while the stream was open; or
 *   3. its server was SIGKILLed while the stream was open; or
 *   4. it has no access-log line and started while its server was down or before every agent had reconnected to it.
 * An explained failure must also have ended within its fault's bound (cut or server down: 1.5 s; server kill: 2.5 s;
 * blackhole: heartbeat timeout + interval + 1.5 s; agent drain: the drain grace + 2 s), counted from the fault or the stream's start,
 * whichever is later; later is a "slow failure". A side that saw a clean FIN with bytes missing is a "silent
 * truncation", accepted only when a server was SIGKILLed (the kernel then sends the FIN). A per-stream watchdog flags
 * any stream with no progress at either end for longer than the heartbeat timeout + interval + 3 s ("hang").
 * Bun reports a reset that arrives while the process writes as a clean end + close (the write returns -1 and
 * consumes the error), so both ends here count a write that returned -1 as a reset.
 *
 * Verdict: FAIL (exit 1) on any corrupted byte or UDP datagram, a UDP datagram echoed twice, no UDP echo at all,
 * unexplained failure, silent truncation, slow failure, hang, process that died on its own, checkpoint that did not
 * settle, descriptor count not back to baseline, or RSS of a server or agent more than 10% above its baseline at the
 * end. Logs, and report.json, go to --log-dir (default /tmp/…).
 *
 * This file is the entry (it alone reads argv and exits). The parts: options.ts (flags, limits), state.ts (the run's
 * state, passed to every part), cluster.ts (processes), faults.ts, visitor.ts, streams.ts (matching, watchdog,
 * settling), classify.ts (the rule above, pure), access.ts (access lines), checkpoint.ts, verdict.ts.
 */
import { mkdirSync } from "node:fs";
import { checkpoint } from "./checkpoint.ts";
import { connectivity, startAgent, startServer, startTarget, stopAll } from "./cluster.ts";
import { faultLoop } from "./faults.ts";
import { USAGE, UsageError, parseOptions, type Options } from "./options.ts";
import { SoakProxy } from "./proxy.ts";
import { createSoak, sleep, waitFor, type Soak } from "./state.ts";
import { watch } from "./streams.ts";
import { verdict } from "./verdict.ts";
import { startUdpEcho } from "./udp.ts";
import { startLoad } from "./visitor.ts";

/** Housekeeping every few seconds while the soak runs (all timers unref'd). */
function startTimers(s: Soak): void {
  setInterval(() => s.files.flushAll(), 1000).unref();
  setInterval(() => s.streams.access.prune(Date.now() - 30_000), 5000).unref();
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    s.load.lagMaxMs = Math.max(s.load.lagMaxMs, now - last - 100);
    last = now;
  }, 100).unref();
  /** Peak fds/RSS while under load. */
  setInterval(() => s.procs.samplePeaks(), 5000).unref();
  setInterval(() => watch(s), 250).unref();
  // Forget proxied connections closed long ago (failed streams are attributed within seconds).
  setInterval(() => {
    for (const px of s.proxies) px.forgetClosed(120_000);
  }, 30_000).unref();
}

/** Starts the target, two servers behind their proxies and the agents; resolves when every agent is connected. */
async function startCluster(s: Soak): Promise<void> {
  const o = s.opts;
  s.journal.say(`soak: ${o.minutes} min, seed ${o.seed}, 2 servers, ${o.agents} agents × ${o.connections} connections (+1 aside) each, ${o.visitors} visitors; heartbeat ${o.heartbeatIntervalMs}/${o.heartbeatTimeoutMs} ms; hang after ${s.limits.hangMs} ms without progress; logs in ${o.logDir}`);
  const target = await startTarget(s);
  await startUdpEcho(s);
  for (let i = 0; i < 2; i++) await startServer(s, i, 0, 0, 0);
  for (let i = 0; i < 2; i++) {
    const p = new SoakProxy(i, s.servers[i]?.agentPort ?? 0);
    p.start();
    s.proxies.push(p);
  }
  for (let n = 1; n <= o.agents; n++) startAgent(s, n);
  if (!(await waitFor(() => connectivity(s).ok, 20_000))) throw new Error(`agents did not connect: ${connectivity(s).missing.join("; ")}`);
  s.journal.say(`up: servers on ${s.servers.map((x) => `${x.agentPort}/${x.routePort}`).join(", ")}; proxies ${s.proxies.map((p) => p.port).join(", ")}; target ${target.port}`);
}

/** The run: warm-up (with faults), baseline checkpoint, load phases with a checkpoint each, verdict. Exit code. */
async function run(s: Soak): Promise<number> {
  const t0 = s.journal.t0;
  const totalMs = s.opts.minutes * 60_000;
  await startCluster(s);
  const endAt = t0 + totalMs;
  // Warm-up with faults too: code that only runs under faults (reconnects, drains, resets) is warm by the baseline.
  const warmupMs = Math.min(60_000, Math.max(15_000, totalMs * 0.3));
  startLoad(s);
  void faultLoop(s, t0 + warmupMs - 4_000);
  await sleep(Math.max(0, t0 + warmupMs - Date.now()));
  await checkpoint(s, "baseline (after warm-up)");
  const finalReserve = 8_000;
  let cycle = 1;
  while (Date.now() < endAt - finalReserve - 10_000) {
    const phaseEnd = Math.min(endAt - finalReserve, Date.now() + s.opts.checkpointEveryS * 1000 - 6_000);
    startLoad(s);
    void faultLoop(s, phaseEnd - 6_000);
    await sleep(Math.max(0, phaseEnd - Date.now()));
    const last = Date.now() >= endAt - finalReserve - 10_000;
    const cp = await checkpoint(s, last ? "final" : `minute ${cycle}`);
    cycle++;
    if (last) return verdict(s, cp);
  }
  return verdict(s, await checkpoint(s, "final"));
}

function options(): Options {
  try {
    return parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message) process.stderr.write(`soak: ${e.message}\n`);
    process.stderr.write(USAGE);
    process.exit(e.message ? 2 : 0);
  }
}

const opts = options();
mkdirSync(opts.logDir, { recursive: true });
const soak = createSoak(opts);
startTimers(soak);
const onSignal = () => {
  soak.journal.say("interrupted: stopping every process");
  void stopAll(soak).then(() => process.exit(130));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
let exitCode = 1;
try {
  exitCode = await run(soak);
} catch (e) {
  soak.journal.say(`soak aborted: ${(e as Error).stack ?? String(e)}`);
  exitCode = 1;
}
await stopAll(soak);
process.exit(exitCode);
