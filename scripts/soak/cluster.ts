/**
 * The processes under test and what connects them: the soak target, two servers (each behind a fault-injecting
 * proxy), the agents; their environments and log lines; whether every agent is connected to every server.
 */
import { sourceCommand, spawnRole, startServerProcess, type LogLine } from "../lib/roles.ts";
import { exitOf, type Proc } from "./procs.ts";
import type { ProxiedConn } from "./proxy.ts";
import { sleep, type ServerSlot, type Soak, type TargetHandle } from "./state.ts";
import { onAccessLine, onTargetProgress, onTargetResult } from "./streams.ts";
import type { TargetMessage } from "./wire.ts";
import { UDP_IDLE_TIMEOUT_MS, UDP_SERVICE } from "./udp.ts";

/** The soak target; throws before {@link startTarget} resolved. */
export function targetOf(s: Soak): TargetHandle {
  if (s.target === null) throw new Error("the soak target is not started");
  return s.target;
}

/** Counts warnings per process, follows access lines and closed connections, and writes every line to the log files. */
function onRoleLine(s: Soak, name: string, serverIndex: number | null, line: LogLine, raw: string): void {
  const p = s.procs.live(name) ?? s.procs.latest(name);
  if (line.tag === "access" && line.route === `soak/${UDP_SERVICE}`) {
    // a UDP flow's line (udp.ts checks datagrams itself); not a TCP visitor's
  } else if (line.tag === "access" && serverIndex !== null) {
    onAccessLine(s, serverIndex, line);
    if (line.reason === "fin") return; // not worth a line in the file
  } else if (line.msg === "agent connection closed" && typeof line.connectionId === "string") {
    s.connClosedReason.set(line.connectionId, String(line.reason ?? "closed"));
    if (s.connClosedReason.size > 20_000) s.connClosedReason.delete(s.connClosedReason.keys().next().value as string);
  }
  if (p && (line.level === "warn" || line.level === "error" || line.level === "raw")) {
    const key = `${line.level} ${line.tag ?? ""}: ${line.msg ?? ""}`;
    p.warnings.set(key, (p.warnings.get(key) ?? 0) + 1);
  }
  s.files.writer(name).write(`${raw}\n`);
}

/** Starts the soak target (scripts/soak/target.ts) with IPC; resolves once it listens. */
export async function startTarget(s: Soak): Promise<TargetHandle> {
  let onReady!: (port: number) => void;
  const ready = new Promise<number>((r) => (onReady = r));
  let gcDone: (() => void) | null = null;
  const handle: TargetHandle = {
    port: 0,
    active: 0,
    proc: s.self,
    gc: () =>
      Promise.race([
        new Promise<void>((r) => {
          gcDone = r;
          sub.send({ type: "gc" });
        }),
        sleep(2000),
      ]),
  };
  const sub = Bun.spawn([process.execPath, new URL("./target.ts", import.meta.url).pathname], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(m: TargetMessage) {
      if (m.type === "ready") onReady(m.port);
      else if (m.type === "gc-done") gcDone?.();
      else if (m.type === "results") for (const r of m.results) onTargetResult(s, r);
      else if (m.type === "progress") {
        handle.active = m.active;
        onTargetProgress(s, m.open);
      }
    },
  });
  handle.proc = s.procs.add("target", sub.pid, null, sub);
  s.target = handle;
  handle.port = await Promise.race([
    ready,
    sleep(15_000).then(() => {
      throw new Error("soak target did not start");
    }),
  ]);
  return handle;
}

/** Servers and agents collect garbage on SIGUSR2 (hidden hook in src/main.ts), sent before each checkpoint sample. */
function gcEnv(s: Soak): Record<string, string> {
  return {
    BACKCHANNEL_DEBUG_GC_SIGNAL: "SIGUSR2",
    ...(s.opts.gcLevel > 0 ? { BUN_GARBAGE_COLLECTOR_LEVEL: String(s.opts.gcLevel) } : {}),
  };
}

function serverEnv(s: Soak, listen: string, route: string, udpRoute: string): Record<string, string> {
  return {
    TUNNEL_TLS: "off",
    TUNNEL_LOG_LEVEL: "info",
    TUNNEL_LISTEN: listen,
    TUNNEL_CLUSTERS: "soak=none",
    TUNNEL_ROUTES: `${route}=soak/target,${udpRoute}/udp=soak/${UDP_SERVICE}`,
    TUNNEL_UDP_IDLE_TIMEOUT_MS: String(UDP_IDLE_TIMEOUT_MS),
    TUNNEL_ACCESS_LOG: "on",
    TUNNEL_HEARTBEAT_INTERVAL_MS: String(s.opts.heartbeatIntervalMs),
    TUNNEL_HEARTBEAT_TIMEOUT_MS: String(s.opts.heartbeatTimeoutMs),
    ...gcEnv(s),
  };
}

/** Starts server `index` on the given ports (0: any), retrying for 10 s while they are not free yet. */
export async function startServer(s: Soak, index: number, agentPort: number, routePort: number, udpPort: number): Promise<ServerSlot> {
  const name = `server-${index}`;
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      const started = await startServerProcess(
        sourceCommand("server"),
        serverEnv(s, `127.0.0.1:${agentPort}`, `127.0.0.1:${routePort}`, `127.0.0.1:${udpPort}`),
        { onLine: (l, raw) => onRoleLine(s, name, index, l, raw), keepLines: 200 },
      );
      const slot = s.servers[index] ?? { index, agentPort: 0, routePort: 0, udpPort: 0, proc: null, outages: [] };
      slot.agentPort = started.agentPort;
      slot.routePort = started.routePorts[0] as number;
      slot.udpPort = started.routePorts[1] as number;
      slot.proc = s.procs.add(name, started.role.proc.pid, started.role, null);
      s.servers[index] = slot;
      return slot;
    } catch (e) {
      lastError = e; // e.g. the port is not free yet after a SIGKILL
      await sleep(250);
    }
  }
  throw new Error(`cannot start ${name}: ${String(lastError)}`);
}

function agentEnv(s: Soak, n: number): Record<string, string> {
  return {
    TUNNEL_TLS: "off",
    TUNNEL_LOG_LEVEL: "info",
    TUNNEL_SERVERS: s.proxies.map((p) => `127.0.0.1:${p.port}`).join(","),
    TUNNEL_CLUSTER: "soak",
    TUNNEL_SERVICES: `target=127.0.0.1:${targetOf(s).port},${UDP_SERVICE}=127.0.0.1:${s.udp.echoPort}/udp`,
    TUNNEL_UDP_IDLE_TIMEOUT_MS: String(UDP_IDLE_TIMEOUT_MS),
    TUNNEL_HOSTNAME: `agent-${n}`,
    TUNNEL_CONNECTIONS: String(s.opts.connections),
    TUNNEL_RECONNECT_BASE_MS: "100",
    TUNNEL_RECONNECT_MAX_MS: "1000",
    TUNNEL_CONNECT_TIMEOUT_MS: "3000",
    TUNNEL_HEARTBEAT_INTERVAL_MS: String(s.opts.heartbeatIntervalMs),
    TUNNEL_HEARTBEAT_TIMEOUT_MS: String(s.opts.heartbeatTimeoutMs),
    TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: String(s.opts.drainGraceMs),
    ...gcEnv(s),
  };
}

/** Starts agent `n` (named `agent-<n>`), connecting to every proxy. */
export function startAgent(s: Soak, n: number): Proc {
  const name = `agent-${n}`;
  const role = spawnRole(sourceCommand("agent"), agentEnv(s, n), { onLine: (l, raw) => onRoleLine(s, name, null, l, raw), keepLines: 200 });
  return s.procs.add(name, role.proc.pid, role, null);
}

/** Connections each agent keeps to each server: its data connections and the aside one. */
export function connectionsPerServer(s: Soak): number {
  return s.opts.connections + 1;
}

/** Per server: established (handshaken, not faulted) connections of each agent; `missing` says what lacks. */
export function connectivity(s: Soak): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  const want = connectionsPerServer(s);
  for (const proxy of s.proxies) {
    const est = proxy.established();
    for (const a of s.agentNames) {
      if (s.procs.live(a) === undefined) {
        missing.push(`${a} not running`);
        continue;
      }
      const mine = est.filter((c) => c.id.hostName === a);
      if (mine.length < want) missing.push(`${a}→server-${proxy.index}: ${mine.length}/${want} connections`);
    }
  }
  return { ok: missing.length === 0, missing };
}

/** No leftovers: every live proxied connection is an established, healthy one (no blackholed or replaced ones). */
export function leftovers(s: Soak): string[] {
  const out: string[] = [];
  const want = connectionsPerServer(s);
  for (const proxy of s.proxies) {
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

/** "agent-2 data#1 <connection id>". */
export function describeConn(c: ProxiedConn): string {
  const id = c.id;
  return `${id.hostName ?? "?"} ${id.role ?? "?"}#${id.slot ?? "?"} ${id.connectionId ?? "no id"}`;
}

/** Stops every process (SIGTERM, SIGKILL after 5 s), the proxies, and closes the log files. */
export async function stopAll(s: Soak): Promise<void> {
  s.load.shuttingDown = true;
  s.load.phase = "done";
  const procs = s.procs.all;
  for (const p of procs) {
    if (p.exitedAt !== 0 || p === s.self) continue;
    p.expectedExit = true;
    if (p.role) void p.role.stop(3000);
    else p.sub?.kill("SIGTERM");
  }
  await Promise.race([Promise.all(procs.map(exitOf)), sleep(5000)]);
  for (const p of procs) if (p.exitedAt === 0 && p !== s.self) (p.role?.proc ?? p.sub)?.kill("SIGKILL");
  for (const px of s.proxies) px.stop();
  await s.files.endAll();
}
