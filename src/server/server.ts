/**
 * Server role: the agent-facing listener (handshake → session → host of a cluster) and one public listener per
 * route listen address (visitor → route, by name where several share it → stream on a picked host). See SPEC.md and README "How it works".
 */
import { randomBytes } from "node:crypto";
import type { TLSOptions } from "bun";
import type { ServerConfig, ClusterConfig } from "../config.ts";
import { ReplayGuard } from "../auth/credential.ts";
import { HandshakeStatus, WireCode } from "../protocol/constants.ts";
import type { NetSocket } from "../transport/tcp.ts";
import { listen, type Listener } from "../transport/listener.ts";
import { serverTls, tlsFiles, type ServerTls } from "../transport/tls.ts";
import { watchTlsFiles, type TlsReload } from "../transport/tls-reload.ts";
import { logger } from "../log.ts";
import { PendingHandshake, type HandshakeContext } from "./handshake.ts";
import { AuthPenalties, refuseEarly } from "./gate.ts";
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
  /** Bound port of each route, in TUNNEL_ROUTES order. */
  readonly routePorts: readonly number[];
  readonly registry: Registry;
  readonly stats: ServerStats;
  /** The UDP routes (`/udp`), in TUNNEL_ROUTES order. */
  readonly udpRoutes: readonly UdpRoute[];
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
  const stats = new ServerStats();
  const idPrefix = randomBytes(3).toString("hex");
  const admission = new Admission(config, registry, stats, idPrefix);
  const mosn = new MosnAgents(registry, stats, config.accessLog, idPrefix);
  let agentListener: Listener | null = null;
  const reload = config.tls ? reloadTls(config, () => agentListener) : null;
  let opened: OpenedRoutes | null = null;
  let tls: ServerTls | undefined;
  const udpRoutes: UdpRoute[] = [];
  try {
    tls = config.tls ? await serverTls(config) : undefined;
    agentListener = listenForAgents(config, clusters, tls?.options, stats, admission, mosn);
    opened = openRoutes(config, registry, stats);
    for (const [i, r] of config.routes.entries()) {
      if (r.protocol !== "udp") continue;
      const udp = await UdpRoute.open(r, config, registry, stats);
      udpRoutes.push(udp);
      opened.routePorts[i] = udp.port;
    }
  } catch (e) {
    reload?.stop();
    agentListener?.stop(true);
    for (const l of opened?.listeners ?? []) l.stop(true);
    for (const u of udpRoutes) u.close();
    throw e;
  }
  const routes = opened;
  if (tls !== undefined) {
    const what = tls.created ? "made a self-signed TLS identity: agents trust it with TUNNEL_TLS_PIN" : "TLS certificate";
    log.info(what, { pin: tls.pin, certificate: tls.certPath });
  }
  log.info("server listening", {
    agents: `${config.listen.host}:${agentListener.port}`,
    routes: config.routes.map((r, i) => `${r.listen.host}:${routes.routePorts[i]}${r.protocol === "udp" ? "/udp" : ""}=${r.cluster}/${r.service}${r.match ? `;${r.match.kind}=${r.match.name}` : ""}`),
    tls: config.tls,
    ...(tls !== undefined ? { tlsPin: tls.pin } : {}),
  });

  let closing: Promise<void> | null = null;
  let admin: { readonly port: number; stop(): Promise<void> } | null = null;
  const listener = agentListener;
  const handle: ServerHandle = {
    agentPort: listener.port,
    routePorts: routes.routePorts,
    registry,
    stats,
    udpRoutes,
    get adminPort() {
      return admin?.port ?? null;
    },
    get closing() {
      return closing !== null;
    },
    close(graceful = false) {
      reload?.stop();
      for (const u of udpRoutes) u.close();
      closing ??= closeServer(config, registry, listener, routes.listeners, graceful).then(() => admin?.stop());
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
 * Certificate reload (transport/tls-reload.ts): changed TUNNEL_TLS_CERT, _KEY or _CLIENT_CA files go to the
 * agent listener for new connections. Started before the files are first read (see watchTlsFiles).
 */
function reloadTls(config: ServerConfig, listener: () => Listener | null): TlsReload {
  return watchTlsFiles({
    files: tlsFiles(config),
    intervalMs: config.tlsReloadIntervalMs,
    load: () => serverTls(config),
    apply(material) {
      listener()?.setTls(material.options);
      log.info("TLS certificate reloaded", { pin: material.pin, certificate: material.certPath });
    },
  });
}

/**
 * The agent-facing listener: the gate at accept (auth penalties, pending-handshake caps per server and per source
 * address), then a PendingHandshake per connection, whose success goes to `admission`.
 */
function listenForAgents(
  config: ServerConfig,
  clusters: ReadonlyMap<string, ClusterConfig>,
  tls: TLSOptions | undefined,
  stats: ServerStats,
  admission: Admission,
  mosn: MosnAgents,
): Listener {
  let pendingTotal = 0;
  const pendingByIp = new Map<string, number>();
  const release = (socket: NetSocket): void => {
    pendingTotal--;
    const ip = socket.remoteAddress;
    const n = (pendingByIp.get(ip) ?? 1) - 1;
    if (n <= 0) pendingByIp.delete(ip);
    else pendingByIp.set(ip, n);
  };
  const penalties = new AuthPenalties(config);
  const ctx: HandshakeContext = {
    config,
    clusters,
    replay: new ReplayGuard(),
    penalties,
    onSettled: release,
    onRefused(socket, status, error) {
      stats.handshake(status);
      log.warn("agent handshake refused", { remote: socket.remoteAddress, status, code: error.code, reason: error.message });
    },
    onAccepted(socket, accepted) {
      stats.handshake(HandshakeStatus.SUCCESS);
      admission.admit(socket, accepted);
    },
    onRawAccepted(socket, accepted) {
      stats.handshake(HandshakeStatus.SUCCESS);
      mosn.admit(socket, accepted);
    },
    onGracefulClose: (socket, body) => mosn.gracefulClose(socket, body),
  };
  return listen({
    host: config.listen.host,
    port: config.listen.port,
    tls,
    onHandlerError: (e) => log.error("agent socket handler failed", { error: e }),
    accept(socket) {
      const ip = socket.remoteAddress;
      const perIp = pendingByIp.get(ip) ?? 0;
      const penaltyMs = penalties.remainingMs(ip);
      if (penaltyMs > 0) {
        stats.limitHit("auth_penalty");
        return refuseEarly(socket, tls !== undefined, penaltyMs);
      }
      if (pendingTotal >= config.maxPendingHandshakes || perIp >= config.maxPendingHandshakesPerIp) {
        stats.limitHit("pending_handshakes");
        return refuseEarly(socket, tls !== undefined, 1000);
      }
      pendingTotal++;
      pendingByIp.set(ip, perIp + 1);
      return new PendingHandshake(socket, ctx);
    },
  });
}

/** Stops the listeners; graceful: GOAWAY and wait (bounded) for in-flight streams; then closes every session. */
async function closeServer(config: ServerConfig, registry: Registry, agentListener: Listener, routes: Listener[], graceful: boolean): Promise<void> {
  for (const r of routes) r.stop(false);
  agentListener.stop(false);
  const sessions = [...registry.hosts()].map((h) => h.session);
  const raws = [...registry.rawHosts()];
  for (const r of raws) r.retire(); // idle ones close now, busy ones after their visitor
  if (graceful) {
    for (const s of sessions) s.goAway(WireCode.SHUTTING_DOWN);
    const deadline = Date.now() + config.shutdownGraceMs;
    const busy = () => sessions.some((s) => !s.closed && s.activeStreams > 0) || raws.some((r) => r.carrying !== null);
    while (busy() && Date.now() < deadline) {
      await Bun.sleep(20);
    }
  }
  for (const s of sessions) s.close();
  for (const r of registry.rawHosts()) r.close();
  // Let closed sessions write their last frames and see the agents' FIN before the listener kills sockets.
  await Promise.race([Promise.all(sessions.map((s) => s.gone)), Bun.sleep(2_000)]);
  agentListener.stop(true);
  for (const r of routes) r.stop(true);
}
