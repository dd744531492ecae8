/**
 * Builds configs from environment records (through the real loader) and starts server and agents in-process
 * on loopback port 0. Everything started is stopped by `stopAll()`.
 */
import { loadConfig, type AgentConfig, type ServerConfig } from "../../src/config.ts";
import { startServer, type ServerHandle } from "../../src/server/server.ts";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { configureLogging } from "../../src/log.ts";
import { startAgentAdmin, startServerAdmin } from "../../src/admin/admin.ts";
import type { LogLevel } from "../../src/config.ts";

// In-process roles log through the shared logger: quiet unless TEST_LOG_LEVEL asks for more.
configureLogging({ level: (process.env.TEST_LOG_LEVEL ?? "error") as LogLevel, format: "json" });

const BASE = {
  TUNNEL_TLS: "off",
  TUNNEL_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error",
  TUNNEL_LOG_FORMAT: "json",
};

/** A server config from env (TLS off, loopback port 0 unless overridden). Throws with every error on bad env. */
export function serverConfig(env: Record<string, string>): ServerConfig {
  const r = loadConfig({ ...BASE, TUNNEL_LISTEN: "127.0.0.1:0", ...env }, "server", { isTTY: false });
  if (!r.ok) throw new Error(r.errors.join("\n"));
  return r.config as ServerConfig;
}

/** An agent config from env (TLS off, fast reconnects). */
export function agentConfig(env: Record<string, string>): AgentConfig {
  const r = loadConfig(
    { ...BASE, TUNNEL_RECONNECT_BASE_MS: "50", TUNNEL_RECONNECT_MAX_MS: "500", TUNNEL_HOSTNAME: "edge-1", ...env },
    "agent",
    { isTTY: false },
  );
  if (!r.ok) throw new Error(r.errors.join("\n"));
  return r.config as AgentConfig;
}

const running: { close(graceful?: boolean): Promise<void> }[] = [];

/** Starts a server (with its admin endpoint if TUNNEL_ADMIN_LISTEN is set) and remembers it for stopAll. */
export async function server(env: Record<string, string>): Promise<ServerHandle> {
  const config = serverConfig(env);
  const s = await startServer(config, { admin: (h) => startServerAdmin(config, h) });
  running.push(s);
  return s;
}

/** Starts an agent against `srv` (admin as for servers), waits until it is connected, and remembers it for stopAll. */
export async function agent(srv: ServerHandle | ServerHandle[], env: Record<string, string>): Promise<AgentHandle> {
  const servers = (Array.isArray(srv) ? srv : [srv]).map((s) => `127.0.0.1:${s.agentPort}`).join(",");
  const config = agentConfig({ TUNNEL_SERVERS: servers, ...env });
  const a = await startAgent(config, { admin: (h) => startAgentAdmin(config, h) });
  running.push(a);
  await a.ready();
  return a;
}

/** Stops everything started through this module. */
export async function stopAll(): Promise<void> {
  const all = running.splice(0);
  await Promise.all(all.map((r) => r.close(false)));
}
