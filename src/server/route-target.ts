/**
 * One route's side of a visitor: a stream on a host picked from the route's cluster, with failover to another
 * agent when the first refuses it before taking a byte (failover.ts). Shared by plain listeners and listeners that
 * route by name (routes.ts).
 */
import { isIPv4 } from "node:net";
import type { RouteConfig } from "../config.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";
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

/** Where visitors of one route go. */
export class RouteTarget {
  /** `cluster/service`: the stream label of metrics and logs. */
  readonly label: string;
  /** Port the route's listener is bound to (set once it is). */
  boundPort = 0;
  /**
   * A route bound to one IPv4 address knows its local address: reading it (and the port) from each visitor socket
   * would cost two getsockname() calls per visitor.
   */
  private readonly fixedHost: string | null;

  constructor(
    readonly route: RouteConfig,
    /** Position in TUNNEL_ROUTES. */
    readonly index: number,
    private readonly registry: Registry,
    private readonly stats: ServerStats,
  ) {
    this.label = `${route.cluster}/${route.service}`;
    this.fixedHost = isIPv4(route.listen.host) && route.listen.host !== "0.0.0.0" ? route.listen.host : null;
  }

  /**
   * Gives the visitor to an agent: a stream on one of our agents' connections, or an idle raw connection of a plain
   * MOSN agent (SPEC.md §7). Returns the visitor socket's new owner (the caller installs it; bytes already read go to
   * its onData), or null when no agent connection is available. `name` is what the visitor asked for (TLS server
   * name or HTTP host) on a route matched by name, for the access log.
   */
  open(socket: NetSocket, name: string | null): SocketOwner | null {
    return this.openFor(socket, null, name, true);
  }

  /** Counts and closes (FIN) a visitor no agent could take: never left hanging. */
  refuseNoAgent(socket: NetSocket): void {
    this.stats.visitorRefused(this.label);
    log.debug("visitor refused: no agent connection available", { route: this.label, visitor: socket.remoteAddress, code: logCode("ERR_NO_HOST") });
    socket.end();
  }

  /**
   * Opens a stream for the visitor on a host of the cluster, skipping agents in `exclude` (or, on a raw host, splices
   * it to that connection: no failover there, as a raw connection cannot refuse); null if none.
   */
  private openFor(socket: NetSocket, exclude: Set<string> | null, name: string | null): Stream | null;
  private openFor(socket: NetSocket, exclude: Set<string> | null, name: string | null, raw: true): SocketOwner | null;
  private openFor(socket: NetSocket, exclude: Set<string> | null, name: string | null, raw = false): SocketOwner | null {
    // A host whose ids ran out starts draining and is skipped on the next pick.
    for (let attempt = 0; attempt < 3; attempt++) {
      // A retry after a refusal goes to our agents only (failover.ts moves the visitor into a Stream).
      const host = this.registry.pick(this.route.cluster, exclude, raw);
      if (host === null) break;
      if (host.kind === "raw") return host.carry(socket, this.label);
      const stream = host.session.openStream(socket, {
        service: this.route.service,
        visitorAddress: socket.remoteAddress ?? "",
        visitorPort: socket.remotePort ?? 0,
        routeAddress: this.fixedHost ?? socket.localAddress ?? "",
        routePort: this.fixedHost !== null ? this.boundPort : (socket.localPort ?? 0),
      });
      if (stream === null) continue;
      stream.label = this.label;
      const retry = (code: number) => this.retry(socket, code, host.hostName, exclude, name);
      stream.watchOpening(new VisitorFailover(socket, stream, retry));
      this.stats.streamOpened(this.label);
      if (this.route.match !== null || name !== null) this.stats.streamNames.set(stream, { match: this.route.match?.name ?? "", name });
      return stream;
    }
    return null;
  }

  /**
   * The agent `refusedBy` refused a visitor's stream before taking any byte of it (SPEC §2.2): a stream for it on
   * another agent of the cluster (VisitorFailover moves the visitor there), or null when no other agent is left.
   */
  private retry(socket: NetSocket, code: number, refusedBy: string, tried: Set<string> | null, name: string | null): Stream | null {
    const exclude = new Set(tried ?? []).add(refusedBy);
    if (exclude.size > MAX_RETRIES) return null;
    const next = this.openFor(socket, exclude, name);
    if (next === null) return null;
    this.stats.streamRetried(this.label, code);
    log.debug("visitor retried on another agent", { route: this.label, refusedBy, code: wireCodeName(code) });
    return next;
  }
}
