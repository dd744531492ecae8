/**
 * Agent role: keeps a Peer (TUNNEL_CONNECTIONS data connections + one aside connection) for every server it knows
 * and serves the streams servers open, dialling only TUNNEL_SERVICES. Servers come from TUNNEL_SERVERS (static:
 * never removed) and TUNNEL_SERVER_DISCOVERY (reconciled on every snapshot: new → connect, gone → drain). With
 * TUNNEL_PROTOCOL=mosn each server gets a MosnPeer instead: raw connections spliced to the one service (SPEC.md §7).
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { randomUUID } from "node:crypto";
import type { AgentConfig, ServerAddress } from "../config.ts";
import { bypassesProxy } from "../config-net.ts";
import type { TLSOptions } from "bun";
import { agentTls, certificateCommonName, tlsFiles } from "../transport/tls.ts";
import { watchTlsFiles, type TlsReload } from "../transport/tls-reload.ts";
import type { DialTls } from "../transport/tcp.ts";
import { logger } from "../log.ts";
import { serverLabel, type ConnectionSlot, type SlotContext } from "./connection.ts";
import { startDiscovery, type Discovery } from "./discovery.ts";
import { Peer } from "./peer.ts";
import { MosnPeer } from "./mosn-peer.ts";
import type { RawSlot } from "./raw-slot.ts";
import { Services } from "./services.ts";
import { AgentStats } from "./stats.ts";

const log = logger("agent");

/** A server the agent serves: our protocol's Peer, or a MosnPeer under TUNNEL_PROTOCOL=mosn. */
export type AnyPeer = Peer | MosnPeer;

/** A running agent. */
export interface AgentHandle {
  /** Current peers by `host:port`. */
  readonly peers: ReadonlyMap<string, AnyPeer>;
  /** Every data connection slot of every current peer. */
  readonly slots: readonly (ConnectionSlot | RawSlot)[];
  readonly services: Services;
  readonly stats: AgentStats;
  /** Bound port of the admin endpoint, or null when it is off. */
  readonly adminPort: number | null;
  /** True once close() was called. */
  readonly closing: boolean;
  /** Resolves once every known server has at least one ready data connection (rejects after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<void>;
  /**
   * Stops. Graceful: drain at every server at once; in-flight streams finish; resolves when they are done or
   * after TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS. Otherwise closes everything at once.
   */
  close(graceful?: boolean): Promise<void>;
}

/**
 * Every address a server host name resolves to (one peer per address, as MOSN does). `tlsName`: the name the
 * addresses came from, which TLS verifies the server certificate against (not the address).
 */
async function resolvePeers(server: ServerAddress, config: AgentConfig): Promise<(ServerAddress & { tlsName?: string })[]> {
  // Through a proxy the proxy resolves the name (the edge may have no DNS for it).
  if (isIP(server.host) !== 0 || proxyFor(config, server.host) !== null) return [server];
  try {
    const addrs = await lookup(server.host, { all: true });
    return [...new Set(addrs.map((a) => a.address))].map((host) => ({ ...server, host, tlsName: server.host }));
  } catch (e) {
    log.warn("cannot resolve server, dialling by name", { server: server.host, error: (e as Error).message });
    return [server];
  }
}

/** The proxy for a server (by its configured host): TUNNEL_PROXY always; a proxy from the environment unless NO_PROXY exempts it. */
function proxyFor(config: AgentConfig, host: string): AgentConfig["proxy"] {
  const p = config.proxy;
  if (p === null || p.source === "TUNNEL_PROXY") return p;
  return bypassesProxy(config.noProxy, host) ? null : p;
}

/** Options for tests, and the admin endpoint (started by main.ts with src/admin/; tests may pass it too). */
export interface AgentOptions {
  /** Random source for backoff jitter (seeded in tests). */
  random?: () => number;
  /** Starts the admin endpoint once the agent runs, if TUNNEL_ADMIN_LISTEN is set; stopped last by close(). */
  admin?: (handle: AgentHandle) => { readonly port: number; stop(): Promise<void> };
}

/** Starts the agent role. */
export async function startAgent(config: AgentConfig, opts: AgentOptions = {}): Promise<AgentHandle> {
  const tls = config.tls ? await currentTls(config) : null;
  config = withCertificateName(config, tls?.get());
  const services = new Services(config);
  const stats = new AgentStats();
  const ctx = slotContext({ config, services, stats, instance: randomUUID(), random: opts.random ?? Math.random, proxy: null }, () => tls?.get());
  const peers = new Map<string, AnyPeer>();
  const staticKeys = new Set<string>();
  let closing: Promise<void> | null = null;

  const addPeer = (hp: ServerAddress, tlsName?: string): void => {
    const key = serverLabel(hp.host, hp.port, hp.ws);
    if (peers.has(key) || closing) return;
    // TLS checks the server's name, not the address it resolved to (unless TUNNEL_TLS_SERVER_NAME is set).
    const named = tlsName !== undefined && tls !== null && config.tlsServerName === null;
    const base = { ...ctx, proxy: proxyFor(config, tlsName ?? hp.host) };
    const peerCtx = slotContext(base, named ? () => ({ ...tls?.get(), serverName: tlsName }) : () => tls?.get());
    const peer = config.protocol === "mosn" ? new MosnPeer(peerCtx, hp.host, hp.port) : new Peer(peerCtx, hp.host, hp.port, { name: tlsName, ws: hp.ws });
    peers.set(key, peer);
    peer.start();
  };

  for (const hp of (await Promise.all(config.servers.map((s) => resolvePeers(s, config)))).flat()) {
    staticKeys.add(serverLabel(hp.host, hp.port, hp.ws));
    addPeer(hp, hp.tlsName);
  }

  const discovery = config.serverDiscovery === null ? null : followDiscovery(config, peers, staticKeys, addPeer, stats);

  log.info("agent started", {
    cluster: config.cluster,
    hostname: config.hostname,
    servers: [...peers.keys()],
    ...(config.proxy ? { proxy: `${config.proxy.host}:${config.proxy.port}`, proxyFrom: config.proxy.source } : {}),
    discovery: config.serverDiscovery ? config.serverDiscovery.kind : "off",
    connections: config.connections,
    protocol: config.protocol,
    services: config.services.map((s) => s.name),
  });

  let admin: { readonly port: number; stop(): Promise<void> } | null = null;
  const handle: AgentHandle = {
    peers,
    get slots() {
      return [...peers.values()].flatMap((p): (ConnectionSlot | RawSlot)[] => p.slots);
    },
    services,
    stats,
    get adminPort() {
      return admin?.port ?? null;
    },
    get closing() {
      return closing !== null;
    },
    ready: (timeoutMs = 10_000) => allReady(peers, timeoutMs),
    close(graceful = false) {
      closing ??= (async () => {
        tls?.stop();
        discovery?.stop();
        await Promise.all([...peers.values()].map((p) => p.stop(graceful, config.gracefulCloseMaxWaitMs)));
        services.stop();
        await admin?.stop();
        log.info("agent stopped", { graceful });
      })();
      return closing;
    },
  };
  if (config.adminListen !== null && opts.admin !== undefined) {
    try {
      admin = opts.admin(handle);
    } catch (e) {
      await handle.close(false);
      throw e;
    }
  }
  return handle;
}

/**
 * Follows TUNNEL_SERVER_DISCOVERY: each snapshot adds new servers (`addPeer`) and drains the discovered ones that left
 * it (servers of TUNNEL_SERVERS stay).
 */
function followDiscovery(
  config: AgentConfig,
  peers: Map<string, AnyPeer>,
  staticKeys: ReadonlySet<string>,
  addPeer: (hp: ServerAddress, tlsName?: string) => void,
  stats: AgentStats,
): Discovery {
  let discoveredKeys = new Set<string>();
  const source = config.serverDiscovery as NonNullable<AgentConfig["serverDiscovery"]>;
  return startDiscovery(source, {
    intervalMs: config.discoveryIntervalMs,
    dnsServers: config.dnsServers,
    onSnapshot(servers) {
      const next = new Set(servers.map((s) => serverLabel(s.host, s.port, s.ws)));
      const tlsName = source.kind === "dns" ? source.name : undefined;
      for (const s of servers) addPeer(s, tlsName);
      for (const key of discoveredKeys) {
        if (next.has(key) || staticKeys.has(key)) continue;
        const peer = peers.get(key);
        if (peer === undefined) continue;
        log.info("server left discovery, draining", { server: key });
        peers.delete(key);
        stats.forgetServer(key);
        void peer.stop(true, config.gracefulCloseMaxWaitMs);
      }
      discoveredKeys = next;
    },
  });
}

/** Resolves once every peer has a ready data connection; rejects after `timeoutMs`. */
async function allReady(peers: ReadonlyMap<string, AnyPeer>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (peers.size === 0 || ![...peers.values()].every((p) => p.ready)) {
    if (performance.now() > deadline) throw new Error("agent not connected to every server in time");
    await Bun.sleep(5);
  }
}

/**
 * A slot context whose `tls` is `tls()` at every read: each dial reads it, so a dial after a certificate reload
 * uses the new material.
 */
function slotContext(base: Omit<SlotContext, "tls">, tls: () => DialTls | undefined): SlotContext {
  // Every other field of `base` is copied (whatever SlotContext holds), then `tls` becomes a getter.
  return Object.defineProperty({ ...base }, "tls", { get: tls, enumerable: true }) as SlotContext;
}

/**
 * The agent's TLS options, kept current by certificate reload (transport/tls-reload.ts): changed TUNNEL_TLS_CA,
 * _CERT or _KEY files are used from the next dial on. Throws TunnelError ERR_TLS_CONFIG if the files are unusable at
 * start.
 */
async function currentTls(config: AgentConfig): Promise<{ get(): DialTls; stop(): void }> {
  const box: { current?: DialTls } = {};
  const reload: TlsReload = watchTlsFiles({
    files: tlsFiles(config),
    intervalMs: config.tlsReloadIntervalMs,
    load: () => agentTls(config),
    apply(material) {
      box.current = material;
    },
  });
  let first: DialTls;
  try {
    first = await agentTls(config);
  } catch (e) {
    reload.stop();
    throw e;
  }
  box.current ??= first;
  return { get: () => box.current ?? first, stop: () => reload.stop() };
}

/**
 * With mtls the server accepts only a host name the client certificate proves (its CN or a DNS name): unless
 * TUNNEL_HOSTNAME is set, the agent registers under the certificate's CN.
 */
function withCertificateName(config: AgentConfig, tls: TLSOptions | undefined): AgentConfig {
  if (config.credentialPolicy !== "mtls" || config.hostnameSet || typeof tls?.cert !== "string") return config;
  const cn = certificateCommonName(tls.cert);
  if (cn === null) return config;
  log.info("registering under the client certificate's CN (set TUNNEL_HOSTNAME for another name it proves)", { hostname: cn });
  return { ...config, hostname: cn };
}
