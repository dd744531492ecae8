/**
 * Soak and chaos (issue 9, reliability.md R1–R4, R9): `npm run soak -- --minutes N`.
 *
 * Two servers and several agents (each with several data connections to both servers) run from source as their
 * own processes; every agent connection goes through a fault-injecting proxy (scripts/lib/soak-proxy.ts, one per
 * server). A population of visitors opens streams of random sizes (0 B–16 MiB, log-uniform, so most are small)
 * to a soak target (scripts/lib/soak-target.ts, its own process) with random half-closes on both sides, slow
 * readers and deliberate resets; every byte both ways is generated from a seed and checked at the receiver without
 * being stored (test/support/pattern.ts). Meanwhile faults fire on a seeded schedule: cut a connection (RST),
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
 * Verdict: FAIL (exit 1) on any corrupted byte, unexplained failure, silent truncation, slow failure, hang, process
 * that died on its own, checkpoint that did not settle, descriptor count not back to baseline, or RSS of a server or
 * agent more than 10% above its baseline at the end. Logs, and report.json, go to --log-dir (default /tmp/…).
 */
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { FileSink, Socket, Subprocess } from "bun";
import { sourceCommand, spawnRole, startServerProcess, type LogLine, type RoleProcess } from "./lib/roles.ts";
import { SoakProxy, type ConnFault, type ProxiedConn } from "./soak/proxy.ts";
import { NEVER, encodeHeader, type StreamHeader, type TargetMessage, type TargetResult } from "./soak/wire.ts";
import { Prng } from "../test/support/protocol-prng.ts";
import { PatternSource, PatternVerifier } from "../test/support/pattern.ts";

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  minutes: number;
  seed: number;
  agents: number;
  connections: number;
  visitors: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  drainGraceMs: number;
  checkpointEveryS: number;
  /** BUN_GARBAGE_COLLECTOR_LEVEL for servers and agents (0: Bun's default). */
  gcLevel: number;
  /** Restart every process; by default server-0 and agent-1 are never restarted (they show growth over the run). */
  restartAll: boolean;
  logDir: string;
  verbose: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const o: Options = {
    minutes: 1,
    seed: Date.now() % 1_000_000,
    agents: 3,
    connections: 2,
    visitors: 12,
    heartbeatIntervalMs: 500,
    heartbeatTimeoutMs: 2000,
    drainGraceMs: 5000,
    checkpointEveryS: 60,
    gcLevel: 0,
    restartAll: false,
    logDir: "",
    verbose: false,
  };
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) usage(`--${name} needs a number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [k, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const val = (): string | undefined => inline ?? argv[++i];
    switch (k) {
      case "--minutes": o.minutes = num("minutes", val()); break;
      case "--seed": o.seed = Math.floor(num("seed", val())); break;
      case "--agents": o.agents = Math.max(1, Math.floor(num("agents", val()))); break;
      case "--connections": o.connections = Math.max(1, Math.floor(num("connections", val()))); break;
      case "--visitors": o.visitors = Math.max(1, Math.floor(num("visitors", val()))); break;
      case "--heartbeat-interval-ms": o.heartbeatIntervalMs = num("heartbeat-interval-ms", val()); break;
      case "--heartbeat-timeout-ms": o.heartbeatTimeoutMs = num("heartbeat-timeout-ms", val()); break;
      case "--drain-grace-ms": o.drainGraceMs = num("drain-grace-ms", val()); break;
      case "--checkpoint-every": o.checkpointEveryS = Math.max(20, num("checkpoint-every", val())); break;
      case "--gc-level": o.gcLevel = Math.min(2, Math.floor(num("gc-level", val()))); break;
      case "--restart-all": o.restartAll = true; break;
      case "--log-dir": o.logDir = val() ?? usage("--log-dir needs a path"); break;
      case "--verbose": o.verbose = true; break;
      case "--help": case "-h": usage(""); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (o.minutes <= 0) usage("--minutes must be > 0");
  if (o.logDir === "") o.logDir = `/tmp/backchannel-soak-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  return o;
}

function usage(msg: string): never {
  if (msg) process.stderr.write(`soak: ${msg}\n`);
  process.stderr.write(
    "usage: bun scripts/soak.ts [--minutes N] [--seed S] [--agents 3] [--connections 2] [--visitors 12]\n" +
      "       [--heartbeat-interval-ms 500] [--heartbeat-timeout-ms 2000] [--drain-grace-ms 5000]\n" +
      "       [--checkpoint-every 60] [--gc-level 1] [--restart-all] [--log-dir DIR] [--verbose]\n",
  );
  process.exit(msg ? 2 : 0);
}

const opts = parseOptions(process.argv.slice(2));
mkdirSync(opts.logDir, { recursive: true });

const MiB = 1024 * 1024;
const MAX_STREAM_BYTES = 16 * MiB;
/** No progress at either end of a stream for this long is a hang. */
const HANG_MS = opts.heartbeatTimeoutMs + opts.heartbeatIntervalMs + 3000;
/** A flagged hang still stuck after this long is reset by the visitor so that the soak can go on. */
const HANG_KILL_MS = HANG_MS * 4;
/** After a visitor closes, how long to wait for the target's result and the server's access-log line. */
const SETTLE_WAIT_MS = 3000;
const BOUND_CUT_MS = 1500;
/** A server kill: 1.5 s plus one SYN retransmission (1 s) for a visitor whose SYN met the dying listener. */
const BOUND_KILL_MS = 2500;
const BOUND_BLACKHOLE_MS = opts.heartbeatTimeoutMs + opts.heartbeatIntervalMs + 1500;
const BOUND_AGENT_MS = opts.drainGraceMs + 2000;
const RSS_TOLERANCE = 0.1;

const rng = new Prng(opts.seed);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const t0 = Date.now();
const elapsed = (t = Date.now()) => ((t - t0) / 1000).toFixed(1);

function say(line: string): void {
  process.stdout.write(`[${elapsed().padStart(7)}s] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Process bookkeeping: fds and RSS from /proc

interface Sample {
  at: number;
  fds: number;
  rssKiB: number;
}

interface Proc {
  /** Stable role name, e.g. "server-0", "agent-2", "target", "soak". */
  name: string;
  gen: number;
  pid: number;
  startedAt: number;
  exitedAt: number;
  expectedExit: boolean;
  role: RoleProcess | null;
  sub: Subprocess | null;
  baseline: Sample | null;
  /** Where the baseline came from ("own", or "predecessor"). */
  baselineFrom: string;
  checkpoints: Sample[];
  peakFds: number;
  peakRssKiB: number;
  warnings: Map<string, number>;
}

const procs: Proc[] = [];
const findings: string[] = [];

function finding(msg: string): void {
  findings.push(`${elapsed()}s ${msg}`);
  say(`FINDING: ${msg}`);
}

function readSample(pid: number): Sample | null {
  try {
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)/.exec(status);
    return { at: Date.now(), fds, rssKiB: m ? Number(m[1]) : 0 };
  } catch {
    return null;
  }
}

function live(name: string): Proc | undefined {
  for (let i = procs.length - 1; i >= 0; i--) {
    const p = procs[i] as Proc;
    if (p.name === name && p.exitedAt === 0) return p;
  }
  return undefined;
}

function latest(name: string): Proc | undefined {
  for (let i = procs.length - 1; i >= 0; i--) if ((procs[i] as Proc).name === name) return procs[i];
  return undefined;
}

function newProc(name: string, pid: number, role: RoleProcess | null, sub: Subprocess | null): Proc {
  const prev = latest(name);
  const p: Proc = {
    name,
    gen: prev ? prev.gen + 1 : 1,
    pid,
    startedAt: Date.now(),
    exitedAt: 0,
    expectedExit: false,
    role,
    sub,
    baseline: null,
    baselineFrom: "",
    checkpoints: [],
    peakFds: 0,
    peakRssKiB: 0,
    warnings: new Map(),
  };
  procs.push(p);
  const exited = role ? role.proc.exited : sub ? sub.exited : null;
  void exited?.then((code) => {
    p.exitedAt = Date.now();
    if (role) role.lines.length = 0; // a long run restarts processes hundreds of times
    if (!p.expectedExit && !shuttingDown) finding(`${name}#${p.gen} (pid ${pid}) exited on its own with code ${code}`);
  });
  return p;
}

const self = newProc("soak", process.pid, null, null);

// ---------------------------------------------------------------------------------------------------------------
// Log files and log lines

const writers = new Map<string, FileSink>();
function logWriter(name: string): FileSink {
  let w = writers.get(name);
  if (w === undefined) {
    w = Bun.file(join(opts.logDir, `${name}.log`)).writer();
    writers.set(name, w);
  }
  return w;
}
setInterval(() => {
  for (const w of writers.values()) void w.flush();
}, 1000).unref();

interface AccessLine {
  visitor: string;
  connectionId: string | undefined;
  host: string | undefined;
  reason: string;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  at: number;
}

/** Reasons the servers gave for closed agent connections (for diagnosing unexplained failures). */
const connClosedReason = new Map<string, string>();

function onRoleLine(name: string, serverIndex: number | null, line: LogLine, raw: string): void {
  const p = live(name) ?? latest(name);
  if (line.tag === "access" && serverIndex !== null) {
    onAccessLine(serverIndex, line);
    if (line.reason === "fin") return; // not worth a line in the file
  } else if (line.msg === "agent connection closed" && typeof line.connectionId === "string") {
    connClosedReason.set(line.connectionId, String(line.reason ?? "closed"));
    if (connClosedReason.size > 20_000) connClosedReason.delete(connClosedReason.keys().next().value as string);
  }
  if (p && (line.level === "warn" || line.level === "error" || line.level === "raw")) {
    const key = `${line.level} ${line.tag ?? ""}: ${line.msg ?? ""}`;
    p.warnings.set(key, (p.warnings.get(key) ?? 0) + 1);
  }
  logWriter(name).write(`${raw}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Target process

interface TargetHandle {
  port: number;
  active: number;
  proc: Proc;
  /** Asks the target to run a full GC (before it is sampled at a checkpoint). */
  gc(): Promise<void>;
}

async function startTarget(): Promise<TargetHandle> {
  let onReady!: (port: number) => void;
  const ready = new Promise<number>((r) => (onReady = r));
  let gcDone: (() => void) | null = null;
  const handle: TargetHandle = {
    port: 0,
    active: 0,
    proc: self,
    gc: () =>
      Promise.race([
        new Promise<void>((r) => {
          gcDone = r;
          sub.send({ type: "gc" });
        }),
        sleep(2000),
      ]),
  };
  const sub = Bun.spawn([process.execPath, new URL("./soak/target.ts", import.meta.url).pathname], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(m: TargetMessage) {
      if (m.type === "ready") onReady(m.port);
      else if (m.type === "gc-done") gcDone?.();
      else if (m.type === "results") for (const r of m.results) onTargetResult(r);
      else if (m.type === "progress") {
        handle.active = m.active;
        onTargetProgress(m.at, m.open);
      }
    },
  });
  handle.proc = newProc("target", sub.pid, null, sub);
  handle.port = await Promise.race([
    ready,
    sleep(15_000).then(() => {
      throw new Error("soak target did not start");
    }),
  ]);
  return handle;
}

// ---------------------------------------------------------------------------------------------------------------
// Servers, proxies, agents

interface ServerSlot {
  index: number;
  agentPort: number;
  routePort: number;
  proc: Proc | null;
  /** Outage windows: [killed, back] (back = every agent reconnected, +500 ms; 0 while still out). */
  outages: { killAt: number; backAt: number }[];
}

const servers: ServerSlot[] = [];
const proxies: SoakProxy[] = [];
let target!: TargetHandle;

function serverEnv(listen: string, route: string): Record<string, string> {
  return {
    TUNNEL_TLS: "off",
    TUNNEL_LOG_LEVEL: "info",
    TUNNEL_LISTEN: listen,
    TUNNEL_CLUSTERS: "soak=none",
    TUNNEL_ROUTES: `${route}=soak/target`,
    TUNNEL_ACCESS_LOG: "on",
    TUNNEL_HEARTBEAT_INTERVAL_MS: String(opts.heartbeatIntervalMs),
    TUNNEL_HEARTBEAT_TIMEOUT_MS: String(opts.heartbeatTimeoutMs),
    ...gcEnv(),
  };
}

/** Servers and agents collect garbage on SIGUSR2 (hidden hook in src/main.ts), sent before each checkpoint sample. */
function gcEnv(): Record<string, string> {
  return {
    BACKCHANNEL_DEBUG_GC_SIGNAL: "SIGUSR2",
    ...(opts.gcLevel > 0 ? { BUN_GARBAGE_COLLECTOR_LEVEL: String(opts.gcLevel) } : {}),
  };
}

async function startServer(index: number, agentPort: number, routePort: number): Promise<ServerSlot> {
  const name = `server-${index}`;
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      const s = await startServerProcess(
        sourceCommand("server"),
        serverEnv(`127.0.0.1:${agentPort}`, `127.0.0.1:${routePort}`),
        { onLine: (l, raw) => onRoleLine(name, index, l, raw), keepLines: 200 },
      );
      const slot = servers[index] ?? { index, agentPort: 0, routePort: 0, proc: null, outages: [] };
      slot.agentPort = s.agentPort;
      slot.routePort = s.routePorts[0] as number;
      slot.proc = newProc(name, s.role.proc.pid, s.role, null);
      servers[index] = slot;
      return slot;
    } catch (e) {
      lastError = e; // e.g. the port is not free yet after a SIGKILL
      await sleep(250);
    }
  }
  throw new Error(`cannot start ${name}: ${String(lastError)}`);
}

function agentEnv(n: number): Record<string, string> {
  return {
    TUNNEL_TLS: "off",
    TUNNEL_LOG_LEVEL: "info",
    TUNNEL_SERVERS: proxies.map((p) => `127.0.0.1:${p.port}`).join(","),
    TUNNEL_CLUSTER: "soak",
    TUNNEL_SERVICES: `target=127.0.0.1:${target.port}`,
    TUNNEL_HOSTNAME: `agent-${n}`,
    TUNNEL_CONNECTIONS: String(opts.connections),
    TUNNEL_RECONNECT_BASE_MS: "100",
    TUNNEL_RECONNECT_MAX_MS: "1000",
    TUNNEL_CONNECT_TIMEOUT_MS: "3000",
    TUNNEL_HEARTBEAT_INTERVAL_MS: String(opts.heartbeatIntervalMs),
    TUNNEL_HEARTBEAT_TIMEOUT_MS: String(opts.heartbeatTimeoutMs),
    TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: String(opts.drainGraceMs),
    ...gcEnv(),
  };
}

function startAgent(n: number): Proc {
  const name = `agent-${n}`;
  const role = spawnRole(sourceCommand("agent"), agentEnv(n), { onLine: (l, raw) => onRoleLine(name, null, l, raw), keepLines: 200 });
  return newProc(name, role.proc.pid, role, null);
}

const agentNames = Array.from({ length: opts.agents }, (_, i) => `agent-${i + 1}`);

/** Per server: established (handshaken, not faulted) connections of each agent. */
function connectivity(): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  for (const proxy of proxies) {
    const est = proxy.established();
    for (const a of agentNames) {
      if (live(a) === undefined) {
        missing.push(`${a} not running`);
        continue;
      }
      const mine = est.filter((c) => c.id.hostName === a);
      const want = opts.connections + 1;
      if (mine.length < want) missing.push(`${a}→server-${proxy.index}: ${mine.length}/${want} connections`);
    }
  }
  return { ok: missing.length === 0, missing };
}

/** No leftovers: every live proxied connection is an established, healthy one (no blackholed or replaced ones). */
function leftovers(): string[] {
  const out: string[] = [];
  const want = opts.connections + 1;
  for (const proxy of proxies) {
    const byAgent = new Map<string, number>();
    for (const c of proxy.live) {
      if (!c.established || c.blackholed || c.cutDone) {
        out.push(`server-${proxy.index} conn #${c.n} (${describeConn(c)}) still open ${((Date.now() - c.openedAt) / 1000).toFixed(1)} s after opening`);
        continue;
      }
      const k = c.id.hostName ?? "?";
      byAgent.set(k, (byAgent.get(k) ?? 0) + 1);
    }
    for (const [a, n] of byAgent) if (n > want) out.push(`server-${proxy.index}: ${a} has ${n} connections (want ${want})`);
  }
  return out;
}

function describeConn(c: ProxiedConn): string {
  const id = c.id;
  return `${id.hostName ?? "?"} ${id.role ?? "?"}#${id.slot ?? "?"} ${id.connectionId ?? "no id"}`;
}

async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Faults

interface FaultRecord {
  kind: string;
  at: number;
  what: string;
  until: number;
}
const faultLog: FaultRecord[] = [];
const faultCounts = new Map<string, number>();
/** Agent drains: [SIGTERM, exit]. */
const agentStops: { agent: string; at: number; exitAt: number }[] = [];
let processFault: Promise<void> | null = null;

function recordFault(kind: string, what: string, until = 0): void {
  faultLog.push({ kind, at: Date.now(), what, until });
  faultCounts.set(kind, (faultCounts.get(kind) ?? 0) + 1);
  if (opts.verbose) say(`fault ${kind}: ${what}`);
}

function pickDataConn(): ProxiedConn | null {
  const now = Date.now();
  const candidates = proxies
    .flatMap((p) => p.established())
    .filter((c) => c.id.role === "data" && !c.faults.some((f) => (f.kind === "latency" || f.kind === "stall") && f.until > now));
  return candidates.length === 0 ? null : rng.pick(candidates);
}

const KINDS = ["cut", "blackhole", "blackhole-oneway", "latency", "stall", "server-restart", "agent-restart"] as const;
type Kind = (typeof KINDS)[number];
let bag: Kind[] = [];
function nextKind(): Kind {
  if (bag.length === 0) {
    bag = [...KINDS];
    for (let i = bag.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [bag[i], bag[j]] = [bag[j] as Kind, bag[i] as Kind];
    }
  }
  return bag.pop() as Kind;
}

function inject(kind: Kind): void {
  if ((kind === "server-restart" || kind === "agent-restart") && processFault !== null) {
    bag.unshift(kind); // later
    kind = rng.pick(["cut", "blackhole", "latency", "stall"] as const);
  }
  switch (kind) {
    case "cut":
    case "blackhole":
    case "blackhole-oneway":
    case "latency":
    case "stall": {
      const c = pickDataConn();
      if (c === null) return;
      const where = `server-${c.proxy.index} conn #${c.n} (${describeConn(c)})`;
      if (kind === "cut") c.cut();
      else if (kind === "blackhole") c.blackhole("both");
      else if (kind === "blackhole-oneway") c.blackhole(rng.next() < 0.5 ? "up" : "down");
      else if (kind === "latency") {
        const ms = rng.range(20, 250);
        const forMs = rng.range(2000, 6000);
        c.latency(ms, forMs);
        recordFault(kind, `${where} +${ms} ms for ${forMs} ms`, Date.now() + forMs);
        return;
      } else {
        const forMs = Math.round(opts.heartbeatTimeoutMs / 2);
        c.stall(forMs);
        recordFault(kind, `${where} held ${forMs} ms`, Date.now() + forMs);
        return;
      }
      const f = c.faults[c.faults.length - 1] as ConnFault;
      recordFault(kind, `${where}${f.kind === "blackhole" ? ` dir=${f.dir}` : ""}`);
      return;
    }
    case "server-restart": {
      const index = opts.restartAll ? rng.int(servers.length) : 1;
      processFault = restartServer(index).finally(() => (processFault = null));
      return;
    }
    case "agent-restart": {
      if (!opts.restartAll && opts.agents < 2) return;
      const n = opts.restartAll ? rng.range(1, opts.agents) : rng.range(2, opts.agents);
      processFault = restartAgent(n).finally(() => (processFault = null));
      return;
    }
  }
}

async function restartServer(index: number): Promise<void> {
  const slot = servers[index] as ServerSlot;
  const p = slot.proc as Proc;
  const outage = { killAt: Date.now(), backAt: 0 };
  slot.outages.push(outage);
  p.expectedExit = true;
  p.role?.proc.kill("SIGKILL");
  await p.role?.proc.exited;
  const down = rng.range(300, 2000);
  recordFault("server-restart", `server-${index} SIGKILL, down ${down} ms`);
  await sleep(down);
  await startServer(index, slot.agentPort, slot.routePort);
  const back = await waitFor(() => {
    const est = (proxies[index] as SoakProxy).established();
    return agentNames.every((a) => live(a) === undefined || est.filter((c) => c.id.hostName === a).length >= opts.connections + 1);
  }, 15_000);
  if (!back) finding(`server-${index} restarted but the agents did not all reconnect within 15 s: ${connectivity().missing.join("; ")}`);
  outage.backAt = Date.now() + 500;
}

async function restartAgent(n: number): Promise<void> {
  const name = `agent-${n}`;
  const p = live(name);
  if (p === undefined) return;
  const stop = { agent: name, at: Date.now(), exitAt: 0 };
  agentStops.push(stop);
  recordFault("agent-restart", `${name} SIGTERM (drain), restart`);
  p.expectedExit = true;
  p.role?.proc.kill("SIGTERM");
  const exitBound = opts.drainGraceMs + 5000;
  const code = await Promise.race([p.role?.proc.exited, sleep(exitBound).then(() => null)]);
  if (code === null) {
    finding(`${name} did not exit within ${exitBound} ms of SIGTERM (drain grace ${opts.drainGraceMs} ms); SIGKILL`);
    p.role?.proc.kill("SIGKILL");
    await p.role?.proc.exited;
  } else if (code !== 0) finding(`${name} exited with ${code} after SIGTERM (expected 0)`);
  stop.exitAt = Date.now();
  startAgent(n);
  const back = await waitFor(() => proxies.every((px) => px.established().filter((c) => c.id.hostName === name).length >= opts.connections + 1), 15_000);
  if (!back) finding(`${name} restarted but did not reconnect to every server within 15 s: ${connectivity().missing.join("; ")}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Streams

interface StreamRec {
  id: number;
  server: number;
  h: StreamHeader;
  visitorClose: "early" | "late";
  /** The visitor resets once upSent + downRecv reaches this (NEVER = does not). */
  visitorAbortAfter: number;
  visitorSlowMs: number;
  chunk: number;
  startedAt: number;
  openedAt: number;
  localPort: number;
  sock: Socket<StreamRec> | null;
  header: Uint8Array | null;
  source: PatternSource;
  verifier: PatternVerifier;
  pending: Uint8Array | null;
  upSent: number;
  downRecv: number;
  mismatchAt: number;
  eof: boolean;
  finSent: boolean;
  aborted: boolean;
  /** A write returned -1: the peer reset the connection (Bun then reports a clean end and close). */
  writeFailed: boolean;
  closedAt: number;
  closeError: string | null;
  connectError: string | null;
  sinceSlow: number;
  slowTimer: ReturnType<typeof setTimeout> | null;
  lastProgressAt: number;
  targetProgressAt: number;
  targetUp: number;
  targetDown: number;
  targetOpen: boolean;
  target: TargetResult | null;
  access: AccessLine | null;
  /** The access line was matched by time (the visitor never opened, so its port is unknown). */
  accessByTime: boolean;
  hang: boolean;
  hangKilled: boolean;
  done: () => void;
}

let nextStreamId = 1;
const open = new Map<number, StreamRec>();
const byPort = new Map<string, StreamRec>();

interface Totals {
  started: number;
  ok: number;
  failedExplained: number;
  abortsAsExpected: number;
  unexplained: number;
  silentTruncations: number;
  slowFailures: number;
  corruptStreams: number;
  corruptBytes: number;
  hangs: number;
  bytesVerified: number;
  connectRefused: number;
  lateTargetResults: number;
  explainedBy: Map<string, number>;
  /** For explained failures: ms from the fault (or the stream's start, if later) to the stream's end, by kind. */
  failLatencies: Map<string, number[]>;
  failReasons: Map<string, number>;
}
const totals: Totals = {
  started: 0,
  ok: 0,
  failedExplained: 0,
  abortsAsExpected: 0,
  unexplained: 0,
  silentTruncations: 0,
  slowFailures: 0,
  corruptStreams: 0,
  corruptBytes: 0,
  hangs: 0,
  bytesVerified: 0,
  connectRefused: 0,
  lateTargetResults: 0,
  explainedBy: new Map(),
  failLatencies: new Map(),
  failReasons: new Map(),
};
const problems: string[] = [];
function problem(msg: string): void {
  problems.push(`${elapsed()}s ${msg}`);
  if (problems.length <= 200) say(`PROBLEM: ${msg}`);
}
function bump(m: Map<string, number>, k: string, n = 1): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

/** Log-uniform over 1 B–16 MiB (so most streams are small), 5% empty. */
function drawSize(): number {
  if (rng.next() < 0.05) return 0;
  return Math.min(MAX_STREAM_BYTES, Math.floor(2 ** (rng.next() * 24)));
}

/** A slow reader's pause per 256 KiB, capped so that no stream spends more than ~3 s paused. */
function drawSlow(bytes: number): number {
  if (rng.next() >= 0.1 || bytes < 256 * 1024) return 0;
  const pauses = Math.ceil(bytes / (256 * 1024));
  return Math.max(10, Math.min(rng.range(50, 250), Math.floor(3000 / pauses)));
}

function newStream(): StreamRec {
  const id = nextStreamId++;
  const upBytes = drawSize();
  const downBytes = drawSize();
  const targetAbort = downBytes > 0 && rng.next() < 0.03;
  const visitorAbort = !targetAbort && upBytes + downBytes > 0 && rng.next() < 0.03;
  const h: StreamHeader = {
    streamId: id,
    upSeed: (rng.next() * 0xffffffff) >>> 0,
    upBytes,
    downSeed: (rng.next() * 0xffffffff) >>> 0,
    downBytes,
    targetClose: rng.next() < 0.5 ? "early" : "late",
    targetSlowMs: drawSlow(upBytes),
    targetAbortAt: targetAbort ? rng.int(downBytes) : NEVER,
    targetChunk: Math.floor(2 ** (10 + rng.next() * 6)),
  };
  const now = Date.now();
  const rec: StreamRec = {
    id,
    server: rng.int(servers.length),
    h,
    visitorClose: rng.next() < 0.5 ? "early" : "late",
    visitorAbortAfter: visitorAbort ? rng.int(upBytes + downBytes) : NEVER,
    visitorSlowMs: drawSlow(downBytes),
    chunk: Math.floor(2 ** (10 + rng.next() * 8)),
    startedAt: now,
    openedAt: 0,
    localPort: 0,
    sock: null,
    header: encodeHeader(h),
    source: new PatternSource(h.upSeed),
    verifier: new PatternVerifier(h.downSeed),
    pending: null,
    upSent: 0,
    downRecv: 0,
    mismatchAt: -1,
    eof: false,
    finSent: false,
    aborted: false,
    writeFailed: false,
    closedAt: 0,
    closeError: null,
    connectError: null,
    sinceSlow: 0,
    slowTimer: null,
    lastProgressAt: now,
    targetProgressAt: 0,
    targetUp: 0,
    targetDown: 0,
    targetOpen: false,
    target: null,
    access: null,
    accessByTime: false,
    hang: false,
    hangKilled: false,
    done: () => {},
  };
  totals.started++;
  open.set(id, rec);
  return rec;
}

function visitorAbortDue(r: StreamRec): boolean {
  return r.visitorAbortAfter !== NEVER && r.upSent + r.downRecv >= r.visitorAbortAfter;
}

function abortVisitor(s: Socket<StreamRec>): void {
  const r = s.data;
  r.aborted = true;
  s.terminate();
}

function pumpVisitor(s: Socket<StreamRec>): void {
  const r = s.data;
  if (r.closedAt !== 0 || r.aborted) return;
  for (;;) {
    if (visitorAbortDue(r)) return abortVisitor(s);
    if (r.pending === null) {
      if (r.header !== null) {
        r.pending = r.header;
        r.header = null;
      } else {
        if (r.upSent >= r.h.upBytes) break;
        let n = Math.min(r.chunk, r.h.upBytes - r.upSent, 65_536);
        if (r.visitorAbortAfter !== NEVER) n = Math.max(1, Math.min(n, r.visitorAbortAfter - r.upSent - r.downRecv));
        r.pending = r.source.next(n);
        r.upSent += n; // counted when produced; `pending` is what is still unwritten
      }
    }
    const w = s.write(r.pending);
    if (w < 0) {
      r.writeFailed = true;
      return;
    }
    if (w > 0) r.lastProgressAt = Date.now();
    if (w < r.pending.byteLength) {
      r.pending = r.pending.subarray(w);
      return;
    }
    r.pending = null;
  }
  maybeFinVisitor(s);
}

function maybeFinVisitor(s: Socket<StreamRec>): void {
  const r = s.data;
  if (r.finSent || r.closedAt !== 0 || r.aborted || r.pending !== null || r.header !== null || r.upSent < r.h.upBytes) return;
  if (r.visitorClose === "late" && r.downRecv < r.h.downBytes) return;
  r.finSent = true;
  if (r.eof) s.end();
  else s.shutdown();
}

function runVisitor(r: StreamRec): Promise<void> {
  return new Promise<void>((resolve) => {
    let resolved = false;
    r.done = () => {
      if (resolved) return;
      resolved = true;
      resolve();
    };
    const slot = servers[r.server] as ServerSlot;
    Bun.connect<StreamRec>({
      hostname: "127.0.0.1",
      port: slot.routePort,
      allowHalfOpen: true,
      data: r,
      socket: {
        binaryType: "uint8array",
        open(s) {
          r.openedAt = Date.now();
          r.lastProgressAt = r.openedAt;
          r.localPort = s.localPort;
          r.sock = s;
          const key = `${r.server}:${s.localPort}`;
          byPort.set(key, r);
          claimPendingAccess(r, key);
          pumpVisitor(s);
        },
        data(s, chunk: Uint8Array) {
          r.lastProgressAt = Date.now();
          const room = r.h.downBytes - r.downRecv;
          r.downRecv += chunk.byteLength;
          if (chunk.byteLength > room && r.mismatchAt < 0) r.mismatchAt = r.h.downBytes;
          const mine = chunk.byteLength > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
          if (mine.byteLength > 0) r.verifier.push(mine);
          if (r.verifier.firstMismatch >= 0 && (r.mismatchAt < 0 || r.verifier.firstMismatch < r.mismatchAt)) {
            r.mismatchAt = r.verifier.firstMismatch;
          }
          if (visitorAbortDue(r)) return abortVisitor(s);
          if (r.visitorSlowMs > 0) {
            r.sinceSlow += chunk.byteLength;
            if (r.sinceSlow >= 256 * 1024 && r.slowTimer === null) {
              r.sinceSlow = 0;
              s.pause();
              r.slowTimer = setTimeout(() => {
                r.slowTimer = null;
                if (r.closedAt === 0) {
                  r.lastProgressAt = Date.now();
                  s.resume();
                }
              }, r.visitorSlowMs);
            }
          }
          maybeFinVisitor(s);
        },
        drain(s) {
          pumpVisitor(s);
        },
        end(s) {
          r.lastProgressAt = Date.now();
          r.eof = true;
          if (r.finSent || r.downRecv < r.h.downBytes) s.end(); // done, or the peer ended early: nothing more to wait for
          else maybeFinVisitor(s);
        },
        close(_s, error?: Error) {
          r.closedAt = Date.now();
          if (r.slowTimer !== null) clearTimeout(r.slowTimer);
          r.closeError = error ? String((error as Error & { code?: string }).code ?? error.message) : r.writeFailed ? "write failed (reset)" : null;
          // After our own shutdown() the peer's FIN shows up only as a clean close (bun-platform.md §1.5).
          if (!error && !r.aborted && !r.writeFailed) r.eof = true;
          if (r.writeFailed) r.eof = false;
          r.done();
        },
        connectError(_s, error: Error) {
          r.closedAt = Date.now();
          r.connectError = String((error as Error & { code?: string }).code ?? error.message);
          r.done();
        },
        error() {},
      },
    }).catch((e: unknown) => {
      if (r.closedAt !== 0) return;
      r.closedAt = Date.now();
      r.connectError = String((e as Error & { code?: string }).code ?? (e as Error).message);
      r.done();
    });
  });
}

/**
 * Access lines not matched to a visitor yet, by `server:port`. A stream refused at once can be logged by the server
 * before the visitor's own `open` callback ran here (when this loop lags); `open` looks here too.
 */
const pendingAccess = new Map<string, AccessLine[]>();
setInterval(() => {
  const old = Date.now() - 30_000;
  for (const [k, list] of pendingAccess) {
    const keep = list.filter((a) => a.at > old);
    if (keep.length === 0) pendingAccess.delete(k);
    else pendingAccess.set(k, keep);
  }
}, 5000).unref();

/**
 * A visitor whose connect was reset never learned its local port (its `open` never ran: the server reset it while
 * this loop lagged). Match it by time instead: the unclaimed access line of its server, not "fin" and with a
 * visitor port, logged between its start and 3 s after its end, closest to its end. (Every visitor that opened
 * claims its own line, so such lines are rare.)
 */
function claimAccessByTime(r: StreamRec): void {
  let best: { key: string; i: number; d: number } | null = null;
  for (const [key, list] of pendingAccess) {
    if (!key.startsWith(`${r.server}:`)) continue;
    list.forEach((a, i) => {
      // Lines without a visitor port (":0": the visitor was gone before the server read its address) never match.
      if (a.reason === "fin" || a.visitor.endsWith(":0") || a.at < r.startedAt || a.at > r.closedAt + SETTLE_WAIT_MS) return;
      const d = Math.abs(a.at - r.closedAt);
      if (best === null || d < best.d) best = { key, i, d };
    });
  }
  if (best === null) return;
  const { key, i } = best;
  const list = pendingAccess.get(key) as AccessLine[];
  r.access = list[i] as AccessLine;
  r.accessByTime = true;
  list.splice(i, 1);
  if (list.length === 0) pendingAccess.delete(key);
}

/** Attaches a waiting access line (one that arrived after the stream started) to a stream that just opened. */
function claimPendingAccess(r: StreamRec, key: string): void {
  const list = pendingAccess.get(key);
  if (list === undefined) return;
  const i = list.findIndex((a) => a.at >= r.startedAt);
  if (i < 0) return;
  r.access = list[i] as AccessLine;
  list.splice(i, 1);
  if (list.length === 0) pendingAccess.delete(key);
}

function onAccessLine(serverIndex: number, line: LogLine): void {
  const visitor = String(line.visitor ?? "");
  const port = Number(visitor.slice(visitor.lastIndexOf(":") + 1));
  const key = `${serverIndex}:${port}`;
  const r = byPort.get(key);
  const a: AccessLine = {
    visitor,
    connectionId: typeof line.connectionId === "string" ? line.connectionId : undefined,
    host: typeof line.host === "string" ? line.host : undefined,
    reason: String(line.reason ?? ""),
    bytesIn: Number(line.bytesIn ?? 0),
    bytesOut: Number(line.bytesOut ?? 0),
    durationMs: Number(line.durationMs ?? 0),
    at: Date.now(),
  };
  if (r !== undefined && r.access === null) {
    r.access = a;
    return;
  }
  const list = pendingAccess.get(key) ?? [];
  list.push(a);
  pendingAccess.set(key, list);
}

function onTargetResult(t: TargetResult): void {
  if (t.id < 0) return; // a connection closed before its header arrived (e.g. aborted at once)
  const r = open.get(t.id);
  if (r === undefined) {
    totals.lateTargetResults++;
    return;
  }
  r.target = t;
  r.targetOpen = false;
  r.targetProgressAt = Math.max(r.targetProgressAt, t.closedAt);
}

function onTargetProgress(at: number, items: [number, number, number, number][]): void {
  const seen = new Set<number>();
  for (const [id, up, down, last] of items) {
    const r = open.get(id);
    if (r === undefined) continue;
    seen.add(id);
    r.targetOpen = true;
    r.targetUp = up;
    r.targetDown = down;
    r.targetProgressAt = Math.max(r.targetProgressAt, last);
  }
  for (const r of open.values()) if (r.targetOpen && r.target === null && !seen.has(r.id)) r.targetOpen = false;
  void at;
}

// --- settlement and classification


function connFor(r: StreamRec): ProxiedConn | null {
  const id = r.access?.connectionId;
  if (id === undefined) return null;
  return (proxies[r.server] as SoakProxy).byConnectionId.get(id) ?? null;
}

/** Why a stream is not a clean success, or [] if it is. */
function expectationsMissed(r: StreamRec): { misses: string[]; silentTruncation: boolean } {
  const misses: string[] = [];
  let silentTruncation = false;
  const h = r.h;
  const t = r.target;
  const targetAbort = h.targetAbortAt !== NEVER;
  const visitorAbort = r.visitorAbortAfter !== NEVER;
  if (r.connectError !== null) {
    misses.push(`connect: ${r.connectError}`);
    return { misses, silentTruncation };
  }
  // Visitor side.
  if (r.hangKilled) misses.push("visitor reset by the hang watchdog");
  else if (visitorAbort) {
    // We reset it ourselves: nothing to expect here.
  } else if (targetAbort) {
    if (r.closeError === null) {
      misses.push(`visitor saw a clean end after the target reset (${r.downRecv}/${h.downBytes} B)`);
      silentTruncation = true;
    }
  } else {
    if (r.closeError !== null) misses.push(`visitor ${r.closeError} at ${r.downRecv}/${h.downBytes} B down, ${r.upSent}/${h.upBytes} B up`);
    else if (r.downRecv < h.downBytes) {
      misses.push(`visitor clean end with ${r.downRecv}/${h.downBytes} B`);
      silentTruncation = true;
    }
  }
  // Target side.
  if (targetAbort) {
    // The target reset it itself.
  } else if (t === null) {
    if (!visitorAbort) misses.push(r.targetOpen ? "target still open" : "the target never saw the stream");
  } else if (t.idleKilled) {
    misses.push("target side idle-killed");
  } else if (visitorAbort) {
    if (t.error === null && t.upRecv < h.upBytes) {
      misses.push(`target saw a clean end after the visitor reset (${t.upRecv}/${h.upBytes} B)`);
      silentTruncation = true;
    }
  } else {
    if (t.error !== null) misses.push(`target ${t.error} at ${t.upRecv}/${h.upBytes} B up, ${t.downSent}/${h.downBytes} B down`);
    else if (t.upRecv < h.upBytes || !t.eof) {
      misses.push(`target clean end with ${t.upRecv}/${h.upBytes} B`);
      silentTruncation = true;
    } else if (t.downSent < h.downBytes) misses.push(`target wrote only ${t.downSent}/${h.downBytes} B`);
  }
  return { misses, silentTruncation };
}

function describe(r: StreamRec): string {
  const h = r.h;
  const a = r.access;
  const c = connFor(r);
  return (
    `stream ${r.id} via server-${r.server} port ${r.localPort} (up ${h.upBytes} B ${r.visitorClose}, down ${h.downBytes} B ${h.targetClose}` +
    `${r.visitorAbortAfter !== NEVER ? `, visitor reset at ${r.visitorAbortAfter}` : ""}` +
    `${h.targetAbortAt !== NEVER ? `, target reset at ${h.targetAbortAt}` : ""}` +
    `${r.visitorSlowMs ? `, slow visitor ${r.visitorSlowMs} ms` : ""}${h.targetSlowMs ? `, slow target ${h.targetSlowMs} ms` : ""})` +
    ` open ${elapsed(r.startedAt)}s–${r.closedAt ? `${elapsed(r.closedAt)}s` : "…"}` +
    `; visitor up ${r.upSent} down ${r.downRecv} eof=${r.eof} fin=${r.finSent} err=${r.closeError ?? r.connectError ?? "-"}` +
    `; target ${r.target ? `up ${r.target.upRecv} down ${r.target.downSent} eof=${r.target.eof} err=${r.target.error ?? "-"}` : r.targetOpen ? `open up ${r.targetUp} down ${r.targetDown}` : "none"}` +
    `; access ${a ? `${a.reason} conn ${a.connectionId} ${a.host} in ${a.bytesIn} out ${a.bytesOut}${r.accessByTime ? " (matched by time)" : ""}` : "none"}` +
    `${c ? `; proxied conn #${c.n} faults [${c.faults.map((f) => `${f.kind}@${elapsed(f.at)}s`).join(", ")}]` : ""}` +
    `${a?.connectionId && connClosedReason.has(a.connectionId) ? `; server closed that connection: ${connClosedReason.get(a.connectionId)}` : ""}`
  );
}

/**
 * The fault that explains a failure, with its time and bound; null if none does. In order: the stream's connection
 * (from its access-log line) was cut or blackholed before the stream ended; its agent was draining (SIGTERM) while
 * it was open; its server was killed while it was open; it has no access-log line and started while its server
 * was down or before every agent had reconnected to the restarted server.
 */
function explain(r: StreamRec, end: number): { kind: string; at: number; bound: number } | null {
  const c = connFor(r);
  const f = c?.destructiveFaultAt(end) ?? null;
  if (f !== null) return { kind: f.kind === "cut" ? "cut" : "blackhole", at: f.at, bound: f.kind === "cut" ? BOUND_CUT_MS : BOUND_BLACKHOLE_MS };
  const host = r.access?.host;
  if (host !== undefined) {
    for (const s of agentStops) {
      if (s.agent === host && s.at <= end && (s.exitAt === 0 || s.exitAt >= r.startedAt)) return { kind: "agent-restart", at: s.at, bound: BOUND_AGENT_MS };
    }
  }
  const outages = (servers[r.server] as ServerSlot).outages;
  for (const o of outages) if (o.killAt >= r.startedAt && o.killAt <= end) return { kind: "server-kill", at: o.killAt, bound: BOUND_KILL_MS };
  if (r.access === null) {
    for (const o of outages) {
      if (r.startedAt >= o.killAt && r.startedAt <= (o.backAt === 0 ? Infinity : o.backAt)) return { kind: "server-down", at: r.startedAt, bound: BOUND_CUT_MS };
    }
  }
  return null;
}

function settle(r: StreamRec): void {
  open.delete(r.id);
  // Only a reset connect can have reached the server (a refused one never did).
  if (r.access === null && r.connectError === "ECONNRESET") claimAccessByTime(r);
  if (r.localPort !== 0) {
    const key = `${r.server}:${r.localPort}`;
    if (byPort.get(key) === r) byPort.delete(key);
  }
  const end = Math.max(r.closedAt, r.target?.closedAt ?? 0);
  const t = r.target;
  const verified = r.downRecv - (r.mismatchAt >= 0 ? r.downRecv - r.mismatchAt : 0) + (t ? t.upRecv - (t.mismatchAt >= 0 ? t.upRecv - t.mismatchAt : 0) : 0);
  totals.bytesVerified += Math.max(0, verified);
  const corrupt = r.mismatchAt >= 0 || (t !== null && t.mismatchAt >= 0);
  if (corrupt) {
    totals.corruptStreams++;
    const bad = (r.mismatchAt >= 0 ? r.downRecv - r.mismatchAt : 0) + (t && t.mismatchAt >= 0 ? t.upRecv - t.mismatchAt : 0);
    totals.corruptBytes += Math.max(1, bad);
    problem(`CORRUPTION (first bad byte: visitor ${r.mismatchAt}, target ${t?.mismatchAt ?? "n/a"}): ${describe(r)}`);
    return;
  }
  if (r.hang) {
    // Counted and described when flagged.
    return;
  }
  const { misses, silentTruncation } = expectationsMissed(r);
  if (misses.length === 0) {
    if (r.visitorAbortAfter !== NEVER || r.h.targetAbortAt !== NEVER) totals.abortsAsExpected++;
    else totals.ok++;
    return;
  }
  const why = explain(r, end);
  bump(totals.failReasons, `${(misses[0] as string).replace(/\d+/g, "N")} [server: ${r.access?.reason ?? "no access line"}]`);
  if (r.connectError !== null) totals.connectRefused++;
  if (why === null) {
    totals.unexplained++;
    problem(`UNEXPLAINED failure (${misses.join("; ")}): ${describe(r)}`);
    return;
  }
  if (silentTruncation && why.kind !== "server-kill" && why.kind !== "server-down") {
    totals.silentTruncations++;
    problem(`SILENT TRUNCATION on a ${why.kind} path (${misses.join("; ")}): ${describe(r)}`);
    return;
  }
  const latency = end - Math.max(why.at, r.startedAt);
  if (latency > why.bound) {
    totals.slowFailures++;
    problem(`SLOW FAILURE: ended ${latency} ms after the ${why.kind} (bound ${why.bound} ms): ${describe(r)}`);
    return;
  }
  totals.failedExplained++;
  bump(totals.explainedBy, why.kind);
  const lat = totals.failLatencies.get(why.kind) ?? [];
  if (lat.length < 100_000) lat.push(latency);
  totals.failLatencies.set(why.kind, lat);
}

/** Settles streams whose ends are both known (or given up on), and runs the hang watchdog. */
function watch(): void {
  const now = Date.now();
  for (const r of [...open.values()]) {
    if (r.closedAt !== 0) {
      const since = now - r.closedAt;
      const targetKnown = r.target !== null || (!r.targetOpen && since >= SETTLE_WAIT_MS);
      const accessKnown = r.access !== null || since >= SETTLE_WAIT_MS;
      const clean = r.target !== null && expectationsMissed(r).misses.length === 0;
      if (targetKnown && (accessKnown || clean)) {
        settle(r);
        continue;
      }
      if (r.targetOpen && since > HANG_KILL_MS * 2 && !r.hang) {
        // The visitor is long gone but the target's socket is still open: the agent never closed it.
        flagHang(r, now, "target side still open long after the visitor closed");
      }
    }
    const last = Math.max(r.lastProgressAt, r.targetProgressAt, r.startedAt);
    const stuck = r.closedAt === 0 || r.targetOpen;
    if (stuck && now - last > HANG_MS && !r.hang) flagHang(r, now, `no progress for ${now - last} ms`);
    if (r.hang && r.closedAt === 0 && !r.hangKilled && now - last > HANG_KILL_MS) {
      r.hangKilled = true;
      r.sock?.terminate();
    }
    if (r.hang && r.closedAt !== 0 && (!r.targetOpen || now - r.closedAt > HANG_KILL_MS * 3)) settle(r);
  }
}

function flagHang(r: StreamRec, _now: number, why: string): void {
  r.hang = true;
  totals.hangs++;
  problem(`HANG (${why}): ${describe(r)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Load, checkpoints, reports

type Phase = "load" | "quiet" | "done";
let phase: Phase = "quiet";
let shuttingDown = false;
let loops: Promise<void>[] = [];

async function visitorLoop(): Promise<void> {
  while (phase === "load") {
    const r = newStream();
    await runVisitor(r);
    if (r.connectError !== null || (r.downRecv === 0 && r.closedAt - r.startedAt < 50)) await sleep(50);
  }
}

function startLoad(): void {
  phase = "load";
  loadGen++;
  loops = Array.from({ length: opts.visitors }, () => visitorLoop());
}

let loadGen = 0;

/** Injects faults until `until` or the end of this load phase (does not block the checkpoint). */
async function faultLoop(until: number): Promise<void> {
  const gen = loadGen;
  await sleep(rng.range(1500, 3000));
  while (phase === "load" && loadGen === gen && Date.now() < until) {
    inject(nextKind());
    await sleep(rng.range(2500, 5000));
  }
}

interface Checkpoint {
  at: number;
  label: string;
  settled: boolean;
  samples: Record<string, Sample & { gen: number }>;
  totals: { ok: number; failedExplained: number; unexplained: number; corruptBytes: number; hangs: number; bytesVerified: number; started: number };
}
const checkpoints: Checkpoint[] = [];
let lagMax = 0;
{
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last - 100);
    last = now;
  }, 100).unref();
}

/** Stops the load, lets everything settle and samples every process. */
async function checkpoint(label: string): Promise<Checkpoint> {
  phase = "quiet";
  if (processFault !== null) await processFault;
  for (const p of proxies) p.healAll();
  await Promise.all(loops);
  const waits: string[] = [];
  if (!(await waitFor(() => open.size === 0, 60_000))) waits.push(`${open.size} streams not settled`);
  if (!(await waitFor(() => target.active === 0, 10_000))) waits.push(`target has ${target.active} open sockets`);
  const conn = await waitFor(() => connectivity().ok && leftovers().length === 0, 20_000);
  if (!conn) waits.push(...connectivity().missing, ...leftovers());
  await sleep(1000);
  Bun.gc(true);
  await target.gc();
  for (const p of procs) if (p.exitedAt === 0 && p.role !== null) p.role.proc.kill("SIGUSR2");
  await sleep(500);
  const samples: Checkpoint["samples"] = {};
  const reads = new Map<Proc, Sample[]>();
  for (let i = 0; i < 3; i++) {
    for (const p of procs) {
      if (p.exitedAt !== 0) continue;
      const s = readSample(p.pid);
      if (s) reads.set(p, [...(reads.get(p) ?? []), s]);
    }
    await sleep(300);
  }
  for (const [p, ss] of reads) {
    const fds = Math.min(...ss.map((s) => s.fds));
    const rss = ss.map((s) => s.rssKiB).sort((a, b) => a - b)[Math.floor(ss.length / 2)] as number;
    const s: Sample = { at: Date.now(), fds, rssKiB: rss };
    p.checkpoints.push(s);
    samples[p.name] = { ...s, gen: p.gen };
    // Baseline: a process's first checkpoint after it carried load for 15 s or more.
    if (p.baseline === null && Date.now() - p.startedAt > 15_000) {
      p.baseline = s;
      p.baselineFrom = checkpoints.length === 0 ? "after warm-up" : `own, checkpoint ${checkpoints.length}`;
    }
  }
  if (waits.length > 0) finding(`checkpoint "${label}" did not settle: ${waits.join("; ")}`);
  const cp: Checkpoint = {
    at: Date.now(),
    label,
    settled: waits.length === 0,
    samples,
    totals: {
      ok: totals.ok,
      failedExplained: totals.failedExplained,
      unexplained: totals.unexplained,
      corruptBytes: totals.corruptBytes,
      hangs: totals.hangs,
      bytesVerified: totals.bytesVerified,
      started: totals.started,
    },
  };
  checkpoints.push(cp);
  report(cp);
  return cp;
}

const fmtMiB = (b: number) => `${(b / MiB).toFixed(b >= 100 * MiB ? 0 : 1)} MiB`;

function report(cp: Checkpoint): void {
  const prev = checkpoints[checkpoints.length - 2];
  const dt = prev ? (cp.at - prev.at) / 1000 : (cp.at - t0) / 1000;
  const dBytes = cp.totals.bytesVerified - (prev?.totals.bytesVerified ?? 0);
  const explained = [...totals.explainedBy].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  const faults = [...faultCounts].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  say(
    `== ${cp.label}: streams ok ${totals.ok} (+${cp.totals.ok - (prev?.totals.ok ?? 0)}), resets as designed ${totals.abortsAsExpected}, ` +
      `failed on a faulted path ${totals.failedExplained} (${explained}), unexplained ${totals.unexplained}, ` +
      `corrupted bytes ${totals.corruptBytes}, silent truncations ${totals.silentTruncations}, slow failures ${totals.slowFailures}, hangs ${totals.hangs}`,
  );
  say(`   verified ${fmtMiB(totals.bytesVerified)} (+${fmtMiB(dBytes)}, ${(dBytes / MiB / Math.max(1, dt)).toFixed(1)} MiB/s); faults so far: ${faults}; soak loop lag max ${lagMax.toFixed(0)} ms`);
  const parts: string[] = [];
  for (const [name, s] of Object.entries(cp.samples)) {
    const p = latest(name) as Proc;
    const b = p.baseline;
    parts.push(`${name}${s.gen > 1 ? `#${s.gen}` : ""} ${s.fds} fd/${(s.rssKiB / 1024).toFixed(0)} MB${b && b !== p.checkpoints[p.checkpoints.length - 1] ? ` (base ${b.fds}/${(b.rssKiB / 1024).toFixed(0)})` : ""}`);
  }
  say(`   at rest: ${parts.join(", ")}`);
  lagMax = 0;
}

/** Peak fds/RSS while under load (sampled every 5 s). */
setInterval(() => {
  for (const p of procs) {
    if (p.exitedAt !== 0) continue;
    const s = readSample(p.pid);
    if (s === null) continue;
    p.peakFds = Math.max(p.peakFds, s.fds);
    p.peakRssKiB = Math.max(p.peakRssKiB, s.rssKiB);
  }
}, 5000).unref();

setInterval(watch, 250).unref();
// Forget proxied connections closed long ago (failed streams are attributed within seconds).
setInterval(() => {
  for (const px of proxies) px.forgetClosed(120_000);
}, 30_000).unref();

// ---------------------------------------------------------------------------------------------------------------
// Leak check and verdict

interface LeakRow {
  name: string;
  gen: number;
  baseFds: number;
  fds: number;
  baseRssKiB: number;
  rssKiB: number;
  baselineFrom: string;
  fdOk: boolean;
  rssOk: boolean;
  rssGated: boolean;
}

function leakCheck(final: Checkpoint): LeakRow[] {
  const rows: LeakRow[] = [];
  for (const name of Object.keys(final.samples)) {
    const p = live(name) as Proc;
    const s = final.samples[name] as Sample;
    let base = p.baseline;
    let from = p.baselineFrom;
    if (base === null || base === p.checkpoints[p.checkpoints.length - 1]) {
      // Restarted too late for a baseline of its own: compare with its predecessor's.
      const pred = [...procs].reverse().find((q) => q.name === name && q !== p && q.baseline !== null);
      if (base === null || pred) {
        base = pred?.baseline ?? base;
        from = pred ? `predecessor #${pred.gen}` : from;
      }
    }
    if (base === null) continue;
    const gated = name.startsWith("server") || name.startsWith("agent");
    rows.push({
      name,
      gen: p.gen,
      baseFds: base.fds,
      fds: s.fds,
      baseRssKiB: base.rssKiB,
      rssKiB: s.rssKiB,
      baselineFrom: from,
      fdOk: s.fds <= base.fds,
      rssOk: s.rssKiB <= base.rssKiB * (1 + RSS_TOLERANCE),
      rssGated: gated,
    });
  }
  return rows;
}

async function shutdownAll(): Promise<void> {
  shuttingDown = true;
  phase = "done";
  for (const p of procs) {
    if (p.exitedAt !== 0 || p === self) continue;
    p.expectedExit = true;
    if (p.role) void p.role.stop(3000);
    else p.sub?.kill("SIGTERM");
  }
  await Promise.race([Promise.all(procs.map((p) => (p.role ? p.role.proc.exited : p.sub ? p.sub.exited : null))), sleep(5000)]);
  for (const p of procs) if (p.exitedAt === 0 && p !== self) (p.role?.proc ?? p.sub)?.kill("SIGKILL");
  for (const px of proxies) px.stop();
  for (const w of writers.values()) await w.end();
}

async function main(): Promise<number> {
  const totalMs = opts.minutes * 60_000;
  say(`soak: ${opts.minutes} min, seed ${opts.seed}, 2 servers, ${opts.agents} agents × ${opts.connections} connections (+1 aside) each, ${opts.visitors} visitors; heartbeat ${opts.heartbeatIntervalMs}/${opts.heartbeatTimeoutMs} ms; hang after ${HANG_MS} ms without progress; logs in ${opts.logDir}`);
  target = await startTarget();
  for (let i = 0; i < 2; i++) await startServer(i, 0, 0);
  for (let i = 0; i < 2; i++) {
    const p = new SoakProxy(i, (servers[i] as ServerSlot).agentPort);
    p.start();
    proxies.push(p);
  }
  for (let n = 1; n <= opts.agents; n++) startAgent(n);
  if (!(await waitFor(() => connectivity().ok, 20_000))) throw new Error(`agents did not connect: ${connectivity().missing.join("; ")}`);
  say(`up: servers on ${servers.map((s) => `${s.agentPort}/${s.routePort}`).join(", ")}; proxies ${proxies.map((p) => p.port).join(", ")}; target ${target.port}`);

  const endAt = t0 + totalMs;
  // Warm-up with faults too: code that only runs under faults (reconnects, drains, resets) is warm by the baseline.
  const warmupMs = Math.min(60_000, Math.max(15_000, totalMs * 0.3));
  startLoad();
  void faultLoop(t0 + warmupMs - 4_000);
  await sleep(Math.max(0, t0 + warmupMs - Date.now()));
  await checkpoint("baseline (after warm-up)");
  const finalReserve = 8_000;
  let cycle = 1;
  while (Date.now() < endAt - finalReserve - 10_000) {
    const phaseEnd = Math.min(endAt - finalReserve, Date.now() + opts.checkpointEveryS * 1000 - 6_000);
    startLoad();
    void faultLoop(phaseEnd - 6_000);
    await sleep(Math.max(0, phaseEnd - Date.now()));
    const last = Date.now() >= endAt - finalReserve - 10_000;
    const cp = await checkpoint(last ? "final" : `minute ${cycle}`);
    cycle++;
    if (last) return verdict(cp);
  }
  return verdict(await checkpoint("final"));
}

function verdict(final: Checkpoint): number {
  const rows = leakCheck(final);
  say("== leak check (at rest: after the load stopped and every stream closed; fds must not exceed the baseline, servers' and agents' RSS ≤ +10%)");
  for (const r of rows) {
    const rssPct = ((r.rssKiB / r.baseRssKiB - 1) * 100).toFixed(1);
    say(
      `   ${r.name}${r.gen > 1 ? `#${r.gen}` : ""}: fds ${r.baseFds} → ${r.fds} ${r.fdOk ? "ok" : "LEAK"}; RSS ${(r.baseRssKiB / 1024).toFixed(1)} → ${(r.rssKiB / 1024).toFixed(1)} MB (${rssPct}%) ` +
        `${r.rssOk ? "ok" : r.rssGated ? "GROWTH" : "(harness, not gated)"}; baseline ${r.baselineFrom}`,
    );
  }
  for (const p of procs) {
    if (p.warnings.size === 0) continue;
    const top = [...p.warnings].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, n]) => `${n}× ${k}`);
    say(`   ${p.name}#${p.gen} warnings: ${top.join("; ")}`);
  }
  const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] as number;
  const lats = [...totals.failLatencies].map(([k, xs]) => {
    const v = [...xs].sort((a, b) => a - b);
    return `${k} p50 ${pct(v, 0.5)} / p99 ${pct(v, 0.99)} / max ${v[v.length - 1]} ms`;
  });
  if (lats.length > 0) say(`   failure latency (fault or stream start → stream closed): ${lats.join("; ")}`);
  if (totals.failReasons.size > 0) {
    const top = [...totals.failReasons].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `${n}× ${k}`);
    say(`   failures by first symptom: ${top.join("; ")}`);
  }
  const reasons: string[] = [];
  if (totals.corruptBytes > 0) reasons.push(`${totals.corruptBytes} corrupted bytes in ${totals.corruptStreams} streams`);
  if (totals.unexplained > 0) reasons.push(`${totals.unexplained} unexplained failures`);
  if (totals.silentTruncations > 0) reasons.push(`${totals.silentTruncations} silent truncations`);
  if (totals.slowFailures > 0) reasons.push(`${totals.slowFailures} slow failures`);
  if (totals.hangs > 0) reasons.push(`${totals.hangs} hangs`);
  const fdLeaks = rows.filter((r) => !r.fdOk);
  if (fdLeaks.length > 0) reasons.push(`descriptors above baseline: ${fdLeaks.map((r) => `${r.name} +${r.fds - r.baseFds}`).join(", ")}`);
  const growth = rows.filter((r) => !r.rssOk && r.rssGated);
  if (growth.length > 0) reasons.push(`RSS > +10%: ${growth.map((r) => r.name).join(", ")}`);
  if (findings.length > 0) reasons.push(`${findings.length} findings (${findings.slice(0, 3).join(" | ")})`);
  if (totals.ok < 10) reasons.push(`only ${totals.ok} streams completed`);
  const pass = reasons.length === 0;
  const summary = {
    options: opts,
    pass,
    reasons,
    totals: {
      ...totals,
      explainedBy: Object.fromEntries(totals.explainedBy),
      failLatencies: Object.fromEntries([...totals.failLatencies].map(([k, xs]) => [k, [...xs].sort((a, b) => a - b)])),
      failReasons: Object.fromEntries(totals.failReasons),
    },
    faults: Object.fromEntries(faultCounts),
    faultLog,
    checkpoints,
    leak: rows,
    processes: procs.map((p) => ({ name: p.name, gen: p.gen, pid: p.pid, startedAt: p.startedAt - t0, exitedAt: p.exitedAt ? p.exitedAt - t0 : null, peakFds: p.peakFds, peakRssKiB: p.peakRssKiB, warnings: Object.fromEntries(p.warnings) })),
    problems,
    findings,
  };
  void Bun.write(join(opts.logDir, "report.json"), JSON.stringify(summary, null, 1));
  say(
    `VERDICT: ${pass ? "PASS" : "FAIL"}: ${totals.ok} streams ok, ${fmtMiB(totals.bytesVerified)} verified, ${totals.corruptBytes} corrupted bytes, ` +
      `${totals.failedExplained} failures all on faulted paths, ${totals.unexplained} unexplained, ${totals.hangs} hangs, ` +
      `${fdLeaks.length === 0 ? "descriptors back to baseline" : "DESCRIPTOR LEAK"}, ${growth.length === 0 ? "RSS within 10%" : "RSS GROWTH"}` +
      `${pass ? "" : ` — ${reasons.join("; ")}`} (report: ${join(opts.logDir, "report.json")})`,
  );
  return pass ? 0 : 1;
}

let exitCode = 1;
const onSignal = () => {
  say("interrupted: stopping every process");
  void shutdownAll().then(() => process.exit(130));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
try {
  exitCode = await main();
} catch (e) {
  say(`soak aborted: ${(e as Error).stack ?? String(e)}`);
  exitCode = 1;
}
await shutdownAll();
process.exit(exitCode);
