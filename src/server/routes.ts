/**
 * Public route listeners: each visitor becomes a stream on a host picked from the route's cluster. With no host
 * available the visitor is closed at once (FIN) and counted, never left hanging.
 */
import { isIPv4 } from "node:net";
import type { ServerConfig } from "../config.ts";
import { listen, type Listener, type NetSocket, type SocketOwner } from "../transport/tcp.ts";
import { logger } from "../log.ts";
import type { Registry } from "./registry.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("route");

/** Owner for a visitor we refused: ignores everything until the socket is gone. */
const REFUSED: SocketOwner = { onData() {}, onDrain() {}, onEnd() {}, onClose() {} };

/** Binds every route's listener. Throws TunnelError ERR_LISTEN (already bound ones are stopped). */
export function openRoutes(config: ServerConfig, registry: Registry, stats: ServerStats): Listener[] {
  const listeners: Listener[] = [];
  try {
    for (const route of config.routes) {
      const label = `${route.cluster}/${route.service}`;
      // A route bound to one IPv4 address knows its local address and port: reading them from each visitor socket
      // would cost two getsockname() calls per visitor.
      const fixedHost = isIPv4(route.listen.host) && route.listen.host !== "0.0.0.0" ? route.listen.host : null;
      const listener: Listener = listen({
        host: route.listen.host,
        port: route.listen.port,
        onHandlerError: (e) => log.error("visitor socket handler failed", { route: label, error: e }),
        accept(socket: NetSocket) {
          // A visitor that reset before we got to it has no address any more: nothing to carry.
          if (!socket.remoteAddress) {
            socket.terminate();
            return REFUSED;
          }
          // A host whose ids ran out starts draining and is skipped on the next pick.
          for (let attempt = 0; attempt < 3; attempt++) {
            const host = registry.pick(route.cluster);
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
            stats.streamOpened(label);
            return stream;
          }
          stats.visitorRefused(label);
          log.debug("visitor refused: no agent connection available", { route: label, visitor: socket.remoteAddress });
          socket.end();
          return REFUSED;
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
