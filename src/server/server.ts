/**
 * Server role: the agent-facing listener (handshake → session → host of a cluster) and one public listener per
 * route listen address (visitor → route, by name where several share it → stream on a picked host). See SPEC.md and README "How it works".
 */
import { randomBytes } from "node:crypto";
import type { ServerConfig, ClusterConfig } from "../config.ts";
import { WireCode } from "../protocol/constants.ts";
import type { Listener } from "../transport/listener.ts";
import { serverTls, tlsFiles, type ServerTls } from "../transport/tls.ts";
import { watchTlsFiles, type TlsReload } from "../transport/tls-reload.ts";
import { logger } from "../log.ts";
import { agentGate, listenForAgents, listenForWsAgents, type AgentGate } from "./agent-listeners.ts";
import { ConnectionCap, FD_HEADROOM, defaultConnectionCap, openFileLimit } from "../transport/connection-cap.ts";
import { Registry } from "./registry.ts";
import { Admission } from "./admission.ts";
import { MosnAgents } from "./mosn-agents.ts";
import { openRoutes, type OpenedRoutes } from "./routes.ts";
import { ServerStats } from "./stats.ts";
import { UdpRoute } from "./udp-route.ts";

const log = logger("server");

/** A running server. */
export interface ServerHandle {
  /** Port the agent-facing listener is bound to (useful with port 0). */
  readonly agentPort: number;
  /** Port of the WebSocket listener (TUNNEL_WS_LISTEN), or null when it is off. */
  readonly wsPort: number | null;
  /** Bound port of each route, in TUNNEL_ROUTES order. */
  readonly routePorts: readonly number[];
  readonly registry: Registry;
  readonly stats: ServerStats;
  /** The UDP routes (`/udp`), in TUNNEL_ROUTES order. */
  readonly udpRoutes: readonly UdpRoute[];
  /** Open accepted connections (agents and visitors) and their cap, TUNNEL_MAX_CONNECTIONS (Infinity: none). */
  readonly connections: { readonly open: number; readonly limit: number };
  /** Bound port of the admin endpoint, or null when it is off. */
  readonly adminPort: number | null;
  /** True once close() was called (listeners stop taking connections). */
  readonly closing: boolean;
  /** Stops listeners; with graceful, sends GOAWAY and lets in-flight streams finish first (bounded). */
  close(graceful?: boolean): Promise<void>;
}

/** Options: the admin endpoint (started by main.ts with src/admin/; tests may pass it too). */
export interface ServerOptions {
  /** Starts the admin endpoint once the server runs, if TUNNEL_ADMIN_LISTEN is set; stopped last by close(). */
  admin?: (handle: ServerHandle) => { readonly port: number; stop(): Promise<void> };
}

/** Starts the server role. Throws TunnelError (ERR_LISTEN, ERR_TLS_CONFIG) if it cannot start. */
export async function startServer(config: ServerConfig, opts: ServerOptions = {}): Promise<ServerHandle> {
  const clusters = new Map<string, ClusterConfig>(config.clusters.map((c) => [c.name, c]));
  const registry = new Registry(clusters.keys());
  const stats = new ServerStats(config.metricsPerAgent);
  const fdLimit = openFileLimit();
  const cap = new ConnectionCap(config.maxConnections ?? defaultConnectionCap(fdLimit), () => stats.limitHit("connections"));
  const idPrefix = randomBytes(3).toString("hex");
  const admission = new Admission(config, registry, stats, idPrefix);
  const mosn = new MosnAgents(registry, stats, config.accessLog, idPrefix);
  let agentListener: Listener | null = null;
  let gate: AgentGate | null = null;
  let wsListener: Listener | null = null;
  const reload = config.tls ? reloadTls(config, () => [agentListener, config.wsTls ? wsListener : null]) : null;
  let opened: OpenedRoutes | null = null;
  let tls: ServerTls | undefined;
  const udpRoutes: UdpRoute[] = [];
  try {
    tls = config.tls ? await serverTls(config) : undefined;
    gate = agentGate(config, clusters, stats, admission, mosn);
    agentListener = listenForAgents(config, tls?.options, gate, cap);
    wsListener = listenForWsAgents(config, tls?.options, gate, cap);
    opened = openRoutes(config, registry, stats, cap);
    for (const [i, r] of config.routes.entries()) {
      if (r.protocol !== "udp") continue;
      const udp = await UdpRoute.open(r, config, registry, stats);
      udpRoutes.push(udp);
      opened.routePorts[i] = udp.port;
    }
  } catch (e) {
    reload?.stop();
    gate?.stop();
    agentListener?.stop(true);
    wsListener?.stop(true);
    for (const l of opened?.listeners ?? []) l.stop(true);
    for (const u of udpRoutes) u.close();
    throw e;
  }
  const routes = opened;
  const agentGateOpen = gate;
  logListening(config, tls, agentListener, wsListener, routes);
  logConnectionCap(config, cap, fdLimit);

  let closing: Promise<void> | null = null;
  let admin: { readonly port: number; stop(): Promise<void> } | null = null;
  const listener = agentListener;
  const ws = wsListener;
  const handle: ServerHandle = {
    agentPort: listener.port,
    wsPort: ws?.port ?? null,
    routePorts: routes.routePorts,
    registry,
    stats,
    udpRoutes,
    connections: cap,
    get adminPort() {
      return admin?.port ?? null;
    },
    get closing() {
      return closing !== null;
    },
    close(graceful = false) {
      reload?.stop();
      for (const u of udpRoutes) u.close();
      closing ??= closeServer(config, registry, agentGateOpen, ws === null ? [listener] : [listener, ws], routes.listeners, graceful).then(() => admin?.stop());
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

/** The startup lines: the TLS identity (and pin), then every bound address. */
function logListening(config: ServerConfig, tls: ServerTls | undefined, agents: Listener, ws: Listener | null, routes: OpenedRoutes): void {
  if (tls !== undefined) {
    const what = tls.created ? "made a self-signed TLS identity: agents trust it with TUNNEL_TLS_PIN" : "TLS certificate";
    log.info(what, { pin: tls.pin, certificate: tls.certPath });
  }
  log.info("server listening", {
    agents: `${config.listen.host}:${agents.port}`,
    ...(ws !== null && config.wsListen !== null
      ? { websocket: `${config.wsTls ? "wss" : "ws"}://${config.wsListen.host}:${ws.port}${config.wsPath}` }
      : {}),
    routes: config.routes.map((r, i) => `${r.listen.host}:${routes.routePorts[i]}${r.protocol === "udp" ? "/udp" : ""}=${r.cluster}/${r.service}${r.match ? `;${r.match.kind}=${r.match.name}` : ""}`),
    tls: config.tls,
    ...(tls !== undefined ? { tlsPin: tls.pin } : {}),
  });
}

/** The startup line of the connection cap: the open-file limit and the cap (warned when there is none). */
function logConnectionCap(config: ServerConfig, cap: ConnectionCap, fdLimit: number | null): void {
  const fields = { maxConnections: Number.isFinite(cap.limit) ? cap.limit : "none", openFileLimit: fdLimit ?? "unknown" };
  if (!Number.isFinite(cap.limit)) log.warn("open-file limit unknown: no connection cap; set TUNNEL_MAX_CONNECTIONS", fields);
  else if (fdLimit !== null && config.maxConnections !== null && cap.limit > fdLimit - FD_HEADROOM) {
    log.warn("TUNNEL_MAX_CONNECTIONS is near or above the open-file limit: the process may run out of descriptors", fields);
  } else log.info("connection cap", fields);
}

/**
 * Certificate reload (transport/tls-reload.ts): changed TUNNEL_TLS_CERT, _KEY or _CLIENT_CA files go to the
 * agent listener for new connections. Started before the files are first read (see watchTlsFiles).
 */
function reloadTls(config: ServerConfig, listeners: () => (Listener | null)[]): TlsReload {
  return watchTlsFiles({
    files: tlsFiles(config),
    intervalMs: config.tlsReloadIntervalMs,
    load: () => serverTls(config),
    apply(material) {
      for (const l of listeners()) l?.setTls(material.options);
      log.info("TLS certificate reloaded", { pin: material.pin, certificate: material.certPath });
    },
  });
}

/**
 * Stops the listeners; graceful: the agent listeners stay open until the end, refusing every new connection with a
 * retry time (a replacement process bound with SO_REUSEPORT takes its share meanwhile), GOAWAY on every session and
 * a bounded wait for in-flight streams; then closes every session.
 */
async function closeServer(config: ServerConfig, registry: Registry, gate: AgentGate, agentListeners: Listener[], routes: Listener[], graceful: boolean): Promise<void> {
  for (const r of routes) r.stop(false);
  gate.refuseAll();
  if (!graceful) for (const l of agentListeners) l.stop(false);
  const sessions = [...registry.hosts()].map((h) => h.session);
  if (graceful) {
    for (const s of sessions) s.goAway(WireCode.SHUTTING_DOWN);
    const deadline = Date.now() + config.shutdownGraceMs;
    while (sessions.some((s) => !s.closed && s.activeStreams > 0) && Date.now() < deadline) {
      await Bun.sleep(20);
    }
  }
  for (const s of sessions) s.close();
  // Let closed sessions write their last frames and see the agents' FIN before the listener kills sockets.
  await Promise.race([Promise.all(sessions.map((s) => s.gone)), Bun.sleep(2_000)]);
  gate.stop();
  for (const l of agentListeners) l.stop(true);
  for (const r of routes) r.stop(true);
}
