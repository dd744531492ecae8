/**
 * Agent role: for every server address keeps TUNNEL_CONNECTIONS data connections (each slot on its own dial loop)
 * and serves the streams servers open, dialling only TUNNEL_SERVICES.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { randomUUID } from "node:crypto";
import type { AgentConfig, HostPort } from "../config.ts";
import { agentTls } from "../transport/tls.ts";
import { logger } from "../log.ts";
import { ConnectionSlot, type SlotContext } from "./connection.ts";
import { Services } from "./services.ts";

const log = logger("agent");

/** A running agent. */
export interface AgentHandle {
  /** Every connection slot, for status and tests. */
  readonly slots: readonly ConnectionSlot[];
  readonly services: Services;
  /** Resolves once at least one connection to every server is ready. */
  ready(): Promise<void>;
  /**
   * Stops. With graceful: GOAWAY to every server at once, in-flight streams finish, resolves when they are done
   * or after TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS.
   */
  close(graceful?: boolean): Promise<void>;
}

/** Every address a server host name resolves to (one peer per address, as MOSN does). */
async function resolvePeers(server: HostPort): Promise<HostPort[]> {
  if (isIP(server.host) !== 0) return [server];
  try {
    const addrs = await lookup(server.host, { all: true });
    const unique = [...new Set(addrs.map((a) => a.address))];
    return unique.map((host) => ({ host, port: server.port }));
  } catch (e) {
    log.warn("cannot resolve server, dialling by name", { server: server.host, error: (e as Error).message });
    return [server];
  }
}

/** Starts the agent role. */
export async function startAgent(config: AgentConfig, opts: { random?: () => number } = {}): Promise<AgentHandle> {
  const services = new Services(config);
  const ctx: SlotContext = {
    config,
    services,
    instance: randomUUID(),
    tls: config.tls ? await agentTls(config) : undefined,
    random: opts.random ?? Math.random,
  };
  const peers = (await Promise.all(config.servers.map(resolvePeers))).flat();
  const slots: ConnectionSlot[] = [];
  for (const peer of peers) {
    for (let i = 0; i < config.connections; i++) slots.push(new ConnectionSlot(ctx, peer.host, peer.port, i));
  }
  for (const s of slots) s.start();
  log.info("agent started", {
    cluster: config.cluster,
    hostname: config.hostname,
    servers: peers.map((p) => `${p.host}:${p.port}`),
    connections: config.connections,
    services: config.services.map((s) => s.name),
  });

  let closing: Promise<void> | null = null;
  return {
    slots,
    services,
    async ready() {
      const servers = new Set(slots.map((s) => s.server));
      while (![...servers].every((srv) => slots.some((s) => s.server === srv && s.state === "ready"))) {
        await Bun.sleep(10);
      }
    },
    close(graceful = false) {
      closing ??= (async () => {
        for (const s of slots) s.stop(graceful);
        if (graceful) {
          const deadline = performance.now() + config.gracefulCloseMaxWaitMs;
          while (slots.some((s) => s.activeStreams > 0) && performance.now() < deadline) await Bun.sleep(10);
        }
        for (const s of slots) s.stop(false);
      })();
      return closing;
    },
  };
}
