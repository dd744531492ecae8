/**
 * Faults on a seeded schedule: cut a connection (RST), blackhole one (both ways or one way, for good), add latency,
 * stall one for less than the liveness timeout, SIGKILL a server and restart it on the same ports, SIGTERM an agent
 * (graceful drain) and restart it. Server-0 and agent-1 are never restarted unless --restart-all.
 */
import { connectionsPerServer, connectivity, describeConn, startAgent, startServer } from "./cluster.ts";
import type { ConnFault, ProxiedConn } from "./proxy.ts";
import { FAULT_KINDS, bump, sleep, waitFor, type FaultKind, type ServerSlot, type Soak } from "./state.ts";

function recordFault(s: Soak, kind: string, what: string, until = 0): void {
  s.faults.log.push({ kind, at: Date.now(), what, until });
  bump(s.faults.counts, kind);
  if (s.opts.verbose) s.journal.say(`fault ${kind}: ${what}`);
}

/** A random established data connection not under latency or a stall already; null if none. */
function pickDataConn(s: Soak): ProxiedConn | null {
  const now = Date.now();
  const candidates = s.proxies
    .flatMap((p) => p.established())
    .filter((c) => c.id.role === "data" && !c.faults.some((f) => (f.kind === "latency" || f.kind === "stall") && f.until > now));
  return candidates.length === 0 ? null : s.rng.pick(candidates);
}

/** The next kind from the shuffled bag (a new shuffle of every kind when it is empty). */
function nextKind(s: Soak): FaultKind {
  const f = s.faults;
  if (f.bag.length === 0) {
    f.bag = [...FAULT_KINDS];
    for (let i = f.bag.length - 1; i > 0; i--) {
      const j = s.rng.int(i + 1);
      [f.bag[i], f.bag[j]] = [f.bag[j] as FaultKind, f.bag[i] as FaultKind];
    }
  }
  return f.bag.pop() as FaultKind;
}

/** Applies a connection fault to a random data connection and records it. */
function connFault(s: Soak, kind: "cut" | "blackhole" | "blackhole-oneway" | "latency" | "stall"): void {
  const c = pickDataConn(s);
  if (c === null) return;
  const where = `server-${c.proxy.index} conn #${c.n} (${describeConn(c)})`;
  if (kind === "latency") {
    const ms = s.rng.range(20, 250);
    const forMs = s.rng.range(2000, 6000);
    c.latency(ms, forMs);
    recordFault(s, kind, `${where} +${ms} ms for ${forMs} ms`, Date.now() + forMs);
    return;
  }
  if (kind === "stall") {
    const forMs = Math.round(s.opts.heartbeatTimeoutMs / 2);
    c.stall(forMs);
    recordFault(s, kind, `${where} held ${forMs} ms`, Date.now() + forMs);
    return;
  }
  if (kind === "cut") c.cut();
  else if (kind === "blackhole") c.blackhole("both");
  else c.blackhole(s.rng.next() < 0.5 ? "up" : "down");
  const f = c.faults[c.faults.length - 1] as ConnFault;
  recordFault(s, kind, `${where}${f.kind === "blackhole" ? ` dir=${f.dir}` : ""}`);
}

/** Injects one fault of `kind` (a process restart while another is running becomes a connection fault). */
function inject(s: Soak, kind: FaultKind): void {
  const o = s.opts;
  const f = s.faults;
  if ((kind === "server-restart" || kind === "agent-restart") && f.processFault !== null) {
    f.bag.unshift(kind); // later
    kind = s.rng.pick(["cut", "blackhole", "latency", "stall"] as const);
  }
  if (kind === "server-restart") {
    const index = o.restartAll ? s.rng.int(s.servers.length) : 1;
    f.processFault = restartServer(s, index).finally(() => (f.processFault = null));
  } else if (kind === "agent-restart") {
    if (!o.restartAll && o.agents < 2) return;
    const n = o.restartAll ? s.rng.range(1, o.agents) : s.rng.range(2, o.agents);
    f.processFault = restartAgent(s, n).finally(() => (f.processFault = null));
  } else connFault(s, kind);
}

async function restartServer(s: Soak, index: number): Promise<void> {
  const slot = s.servers[index] as ServerSlot;
  const p = slot.proc;
  const outage = { killAt: Date.now(), backAt: 0 };
  slot.outages.push(outage);
  if (p !== null) {
    p.expectedExit = true;
    p.role?.proc.kill("SIGKILL");
    await p.role?.proc.exited;
  }
  const down = s.rng.range(300, 2000);
  recordFault(s, "server-restart", `server-${index} SIGKILL, down ${down} ms`);
  await sleep(down);
  await startServer(s, index, slot.agentPort, slot.routePort, slot.udpPort);
  const proxy = s.proxies[index];
  const back = await waitFor(() => {
    const est = proxy?.established() ?? [];
    return s.agentNames.every((a) => s.procs.live(a) === undefined || est.filter((c) => c.id.hostName === a).length >= connectionsPerServer(s));
  }, 15_000);
  if (!back) s.journal.finding(`server-${index} restarted but the agents did not all reconnect within 15 s: ${connectivity(s).missing.join("; ")}`);
  outage.backAt = Date.now() + 500;
}

async function restartAgent(s: Soak, n: number): Promise<void> {
  const name = `agent-${n}`;
  const p = s.procs.live(name);
  if (p === undefined) return;
  const stop = { agent: name, at: Date.now(), exitAt: 0 };
  s.faults.agentStops.push(stop);
  recordFault(s, "agent-restart", `${name} SIGTERM (drain), restart`);
  p.expectedExit = true;
  p.role?.proc.kill("SIGTERM");
  const grace = s.opts.drainGraceMs;
  const exitBound = grace + 5000;
  const code = await Promise.race([p.role?.proc.exited, sleep(exitBound).then(() => null)]);
  if (code === null) {
    s.journal.finding(`${name} did not exit within ${exitBound} ms of SIGTERM (drain grace ${grace} ms); SIGKILL`);
    p.role?.proc.kill("SIGKILL");
    await p.role?.proc.exited;
  } else if (code !== 0) s.journal.finding(`${name} exited with ${code} after SIGTERM (expected 0)`);
  stop.exitAt = Date.now();
  startAgent(s, n);
  const back = await waitFor(() => s.proxies.every((px) => px.established().filter((c) => c.id.hostName === name).length >= connectionsPerServer(s)), 15_000);
  if (!back) s.journal.finding(`${name} restarted but did not reconnect to every server within 15 s: ${connectivity(s).missing.join("; ")}`);
}

/** Injects faults every 2.5–5 s until `until` or the end of the current load phase (does not block a checkpoint). */
export async function faultLoop(s: Soak, until: number): Promise<void> {
  const gen = s.load.gen;
  await sleep(s.rng.range(1500, 3000));
  while (s.load.phase === "load" && s.load.gen === gen && Date.now() < until) {
    inject(s, nextKind(s));
    await sleep(s.rng.range(2500, 5000));
  }
}
