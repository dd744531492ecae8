/**
 * Public route listeners: each visitor becomes a stream on a host picked from the route's cluster. With no host
 * available the visitor is closed at once (FIN) and counted, never left hanging.
 */
import { isIPv4 } from "node:net";
import type { ServerConfig } from "../config.ts";
import { IGNORING_OWNER, type NetSocket } from "../transport/tcp.ts";
import { listen, type Listener } from "../transport/listener.ts";
import { logger } from "../log.ts";
import { logCode } from "../errors.ts";
import type { Stream } from "../mux/stream.ts";
import { wireCodeName } from "../protocol/constants.ts";
import { VisitorFailover } from "./failover.ts";
import type { Registry } from "./registry.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("route");

/** Agents a visitor may be offered to after the first one refused it (so at most 1 + this many attempts). */
const MAX_RETRIES = 2;

/** Binds every route's listener. Throws TunnelError ERR_LISTEN (already bound ones are stopped). */
export function openRoutes(config: ServerConfig, registry: Registry, stats: ServerStats): Listener[] {
  const listeners: Listener[] = [];
  try {
    for (const route of config.routes) {
      const label = `${route.cluster}/${route.service}`;
      // A route bound to one IPv4 address knows its local address and port: reading them from each visitor socket
      // would cost two getsockname() calls per visitor.
      const fixedHost = isIPv4(route.listen.host) && route.listen.host !== "0.0.0.0" ? route.listen.host : null;

      /** Opens a stream for the visitor on a host of the cluster, skipping agents in `exclude`; null if none. */
      const openFor = (socket: NetSocket, exclude: Set<string> | null): Stream | null => {
        // A host whose ids ran out starts draining and is skipped on the next pick.
        for (let attempt = 0; attempt < 3; attempt++) {
          const host = registry.pick(route.cluster, exclude);
          if (host === null) break;
          const stream = host.session.openStream(socket, {
            service: route.service,
            visitorAddress: socket.remoteAddress ?? "",
            visitorPort: socket.remotePort ?? 0,
            routeAddress: fixedHost ?? socket.localAddress ?? "",
            routePort: fixedHost !== null ? listener.port : (socket.localPort ?? 0),
          });
          if (stream === null) continue;
          stream.label = label;
          stream.watchOpening(new VisitorFailover(socket, stream, (code) => retry(socket, code, host.hostName, exclude)));
          stats.streamOpened(label);
          return stream;
        }
        return null;
      };

      /**
       * The agent `refusedBy` refused a visitor's stream before taking any byte of it (SPEC §2.2): a stream for it on
       * another agent of the cluster (VisitorFailover moves the visitor there), or null when no other agent is left.
       */
      const retry = (socket: NetSocket, code: number, refusedBy: string, tried: Set<string> | null): Stream | null => {
        const exclude = new Set(tried ?? []).add(refusedBy);
        if (exclude.size > MAX_RETRIES) return null;
        const next = openFor(socket, exclude);
        if (next === null) return null;
        stats.streamRetried(label, code);
        log.debug("visitor retried on another agent", { route: label, refusedBy, code: wireCodeName(code) });
        return next;
      };

      const listener: Listener = listen({
        host: route.listen.host,
        port: route.listen.port,
        onHandlerError: (e) => log.error("visitor socket handler failed", { route: label, error: e }),
        accept(socket: NetSocket) {
          // A visitor that reset before we got to it has no address any more: nothing to carry.
          if (!socket.remoteAddress) {
            socket.terminate();
            return IGNORING_OWNER;
          }
          const stream = openFor(socket, null);
          if (stream !== null) return stream;
          stats.visitorRefused(label);
          log.debug("visitor refused: no agent connection available", { route: label, visitor: socket.remoteAddress, code: logCode("ERR_NO_HOST") });
          socket.end();
          return IGNORING_OWNER;
        },
      });
      listeners.push(listener);
    }
  } catch (e) {
    for (const l of listeners) l.stop(true);
    throw e;
  }
  return listeners;
}
