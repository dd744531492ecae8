/**
 * Public route listeners: one per listen address. A plain route's visitor becomes a stream on a host picked from
 * the route's cluster at once; on an address shared by routes with names (`sni=`, `host=`), a NameSniffer reads
 * the visitor's first bytes to pick the route first. With no host available the visitor is closed at once (FIN)
 * and counted, never left hanging.
 */
import type { ServerConfig } from "../config.ts";
import { groupByAddress } from "../config-routes.ts";
import { formatHostPort } from "../config-parse.ts";
import { IGNORING_OWNER, type NetSocket, type SocketOwner } from "../transport/tcp.ts";
import { listen, type Listener } from "../transport/listener.ts";
import { logger } from "../log.ts";
import type { Registry } from "./registry.ts";
import type { ConnectionCap } from "../transport/connection-cap.ts";
import type { ServerStats } from "./stats.ts";
import { RouteTarget } from "./route-target.ts";
import { NameTable } from "./name-table.ts";
import { NameSniffer, type NameRouting } from "./name-sniffer.ts";

const log = logger("route");

/** The bound listeners and, for each route in TUNNEL_ROUTES order, its port (routes sharing an address share one). */
export interface OpenedRoutes {
  readonly listeners: Listener[];
  readonly routePorts: number[];
}

/**
 * Binds a listener per TCP listen address (UDP routes are udp-route.ts's; their ports stay 0 here). Throws TunnelError
 * ERR_LISTEN (already bound ones are stopped).
 */
export function openRoutes(config: ServerConfig, registry: Registry, stats: ServerStats, cap?: ConnectionCap): OpenedRoutes {
  const listeners: Listener[] = [];
  const routePorts: number[] = config.routes.map(() => 0);
  try {
    for (const group of groupByAddress(config.routes.filter((r) => r.protocol !== "udp"))) {
      const targets = group.map((r) => new RouteTarget(r, config.routes.indexOf(r), registry, stats));
      const first = targets[0] as RouteTarget;
      const named = targets.some((t) => t.route.match !== null);
      const listener = named ? listenByName(config, targets, stats, cap) : listenPlain(first, cap, config.reusePort);
      for (const t of targets) {
        t.boundPort = listener.port;
        routePorts[t.index] = listener.port;
      }
      listeners.push(listener);
    }
  } catch (e) {
    for (const l of listeners) l.stop(true);
    throw e;
  }
  return { listeners, routePorts };
}

/** A visitor that reset before we got to it has no address any more: nothing to carry. */
function gone(socket: NetSocket): boolean {
  if (socket.remoteAddress) return false;
  socket.terminate();
  return true;
}

/** One route alone on its address: every visitor goes to it. */
function listenPlain(target: RouteTarget, cap: ConnectionCap | undefined, reusePort: boolean): Listener {
  const { listen: at } = target.route;
  return listen({
    host: at.host,
    port: at.port,
    cap,
    reusePort,
    onHandlerError: (e) => log.error("visitor socket handler failed", { route: target.label, error: e }),
    accept(socket: NetSocket): SocketOwner {
      if (gone(socket)) return IGNORING_OWNER;
      const stream = target.open(socket, null);
      if (stream !== null) return stream;
      target.refuseNoAgent(socket);
      return IGNORING_OWNER;
    },
  });
}

/** Routes sharing an address by name: each visitor is read by a NameSniffer until its route is known. */
function listenByName(config: ServerConfig, targets: RouteTarget[], stats: ServerStats, cap: ConnectionCap | undefined): Listener {
  const table = new NameTable<RouteTarget>();
  for (const t of targets) table.add(t.route.match?.name ?? null, t);
  const at = (targets[0] as RouteTarget).route.listen;
  const kind = targets.find((t) => t.route.match !== null)?.route.match?.kind ?? "sni";
  const routing: NameRouting = {
    kind,
    table,
    listen: formatHostPort(at),
    timeoutMs: config.handshakeTimeoutMs,
    stats,
    accessLog: config.accessLog,
  };
  const listener = listen({
    host: at.host,
    port: at.port,
    cap,
    reusePort: config.reusePort,
    onHandlerError: (e) => log.error("visitor socket handler failed", { listen: routing.listen, error: e }),
    accept(socket: NetSocket): SocketOwner {
      if (gone(socket)) return IGNORING_OWNER;
      return new NameSniffer(socket, routing);
    },
  });
  routing.listen = formatHostPort({ host: at.host, port: listener.port });
  return listener;
}
