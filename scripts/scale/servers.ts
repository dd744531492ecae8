/**
 * The server processes the scale kit measures: Backchannel from these sources (or --bin / --src), configured only
 * by environment as an operator would, with an echo route (`scale/echo`, served by the swarm itself) and the admin
 * endpoint, logging at warn (10,000 connect lines would be part of the measurement otherwise). Extra variables
 * (`--server-env`) go to every server, so settings under test (e.g. TUNNEL_MAX_CONNECTIONS) can be compared.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Children } from "../bench/processes.ts";
import { spawnRole, type RoleProcess } from "../lib/roles.ts";
import { nowMs } from "./swarm.ts";

/** The cluster and service every scale server offers. */
export const CLUSTER = "scale";
export const SERVICE = "echo";

/** Where one server listens and how it runs. */
export interface ServerSpec {
  /** Loopback address of its agent listener, route and admin endpoint. */
  host: string;
  agentPort: number;
  routePort: number;
  adminPort: number;
  tls: boolean;
  /** Shared by the restarts of one server: a TLS identity is made once. */
  stateDir: string;
  secret: string;
  command: string[];
  extraEnv: Record<string, string>;
}

/** A running scale server. */
export interface ScaleServer {
  spec: ServerSpec;
  role: RoleProcess;
  pid: number;
  /** Epoch ms at which its admin endpoint first answered (it listens by then). */
  listeningAt: number;
  adminUrl: string;
}

/** A port of `host` that was free a moment ago (and, with `also`, free on those addresses too). */
export function freePortOn(host: string, also: string[] = []): number {
  for (let tries = 0; ; tries++) {
    const l = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    const others = also.every((h) => {
      try {
        Bun.listen({ hostname: h, port, socket: { data() {} } }).stop(true);
        return true;
      } catch {
        return false;
      }
    });
    if (others || tries > 20) return port;
  }
}

/** A server spec on `host` with fresh ports, a new secret and a temporary state directory. */
export function serverSpec(kids: Children, host: string, tls: boolean, command: string[], extraEnv: Record<string, string>): ServerSpec {
  const stateDir = mkdtempSync(join(tmpdir(), "backchannel-scale-"));
  kids.tmpDir(stateDir);
  return {
    host,
    agentPort: freePortOn(host),
    routePort: freePortOn(host),
    adminPort: freePortOn(host),
    tls,
    stateDir,
    secret: randomBytes(18).toString("base64url"),
    command,
    extraEnv,
  };
}

function serverEnv(s: ServerSpec): Record<string, string> {
  return {
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_TLS: s.tls ? "on" : "off",
    TUNNEL_STATE_DIR: s.stateDir,
    TUNNEL_LISTEN: `${s.host}:${s.agentPort}`,
    TUNNEL_CLUSTERS: `${CLUSTER}=token:${s.secret}`,
    TUNNEL_ROUTES: `${s.host}:${s.routePort}=${CLUSTER}/${SERVICE}`,
    TUNNEL_ADMIN_LISTEN: `${s.host}:${s.adminPort}`,
    ...s.extraEnv,
  };
}

/**
 * Starts a server; resolves once its admin endpoint answers /healthz (it starts after the agent listener and the
 * routes are bound; the "server listening" line is info, below the servers' log level). Rejects if the process
 * exits first or after `timeoutMs`, with its last log lines.
 */
export async function startServer(kids: Children, spec: ServerSpec, timeoutMs = 20_000): Promise<ScaleServer> {
  const role = spawnRole(spec.command, serverEnv(spec), { keepLines: 200 });
  kids.addRole(role);
  const adminUrl = `http://${spec.host}:${spec.adminPort}`;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${adminUrl}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (ok) return { spec, role, pid: role.proc.pid, listeningAt: nowMs(), adminUrl };
    if (role.proc.exitCode !== null || performance.now() > deadline) {
      role.proc.kill("SIGKILL");
      kids.deleteRole(role);
      const last = role.lines.slice(-3).map((l) => `${l.msg ?? ""} ${detail(l.error ?? l.reason)}`.trim());
      throw new Error(`server on ${spec.host}:${spec.agentPort} did not start (${role.proc.exitCode === null ? "timeout" : `exit ${role.proc.exitCode}`}): ${last.join("; ")}`);
    }
    await Bun.sleep(20);
  }
}

/**
 * Starts a server on fresh ports: a port found free can be taken before the server binds it (by any process's
 * outgoing connection: the kit's visitors make thousands), so on EADDRINUSE it picks new ports (written into
 * `spec`) and tries again, up to 5 times.
 */
export async function startOnFreePorts(kids: Children, spec: ServerSpec): Promise<ScaleServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServer(kids, spec);
    } catch (e) {
      if (attempt >= 5 || !String((e as Error).message).includes("EADDRINUSE")) throw e;
      Object.assign(spec, { agentPort: freePortOn(spec.host), routePort: freePortOn(spec.host), adminPort: freePortOn(spec.host) });
    }
  }
}

/**
 * Starts a server on agent and route ports another process may still hold (a restart): tries again every 20 ms
 * while the new process exits before answering (its ports are taken), until `timeoutMs`. Each try has an admin port
 * of its own, found free just before.
 */
export async function startServerRetrying(kids: Children, spec: ServerSpec, timeoutMs: number): Promise<{ server: ScaleServer; attempts: number }> {
  const deadline = performance.now() + timeoutMs;
  for (let attempts = 1; ; attempts++) {
    try {
      const fresh = { ...spec, adminPort: freePortOn(spec.host) };
      return { server: await startServer(kids, fresh, Math.max(1_000, deadline - performance.now())), attempts };
    } catch (e) {
      if (performance.now() > deadline) throw e;
      await Bun.sleep(20);
    }
  }
}

/** A log field as text (objects as JSON). */
function detail(v: unknown): string {
  if (v === undefined || v === null) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** SIGTERMs (or SIGKILLs) a server; resolves once it exited, with its exit code. */
export async function stopServer(kids: Children, s: ScaleServer, signal: "SIGTERM" | "SIGKILL" = "SIGTERM", graceMs = 20_000): Promise<number> {
  if (signal === "SIGKILL") s.role.proc.kill("SIGKILL");
  const code = signal === "SIGKILL" ? await s.role.proc.exited : await s.role.stop(graceMs);
  kids.deleteRole(s.role);
  return code;
}

/** The server's last warnings and errors (for a report's notes). */
export function lastProblems(s: ScaleServer, n = 3): string[] {
  return s.role.lines
    .filter((l) => l.level === "warn" || l.level === "error" || l.level === "raw")
    .slice(-n)
    .map((l) => `${l.msg ?? ""} ${detail(l.reason ?? l.error ?? l.code)}`.trim());
}
