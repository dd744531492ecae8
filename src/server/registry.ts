/**
 * The cluster registry: which agent connections (hosts) are live in each cluster, and how a visitor picks one.
 *
 * Balancing is per agent (host name), not per connection, so an agent's share does not depend on how many
 * connections it keeps: smooth weighted round-robin (nginx's) over agents with at least one ready host gives each
 * agent exactly its weight's share of new visitors; then the agent's ready connection with the fewest open streams.
 * (Dividing weights by load was tried: it skews shares toward the square root of the weights under concurrency.)
 * Raw hosts (plain MOSN agents' connections, SPEC.md §7) take part in the same choice, grouped by their name, an
 * agent counting as available while one of its raw connections is idle. The choice is indexed
 * (server/cluster-hosts.ts): joins, leaves, drains and picks cost O(log n), not a scan of the cluster.
 */
import type { Session } from "../mux/session.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";
import { ClusterHosts } from "./cluster-hosts.ts";

/** A data connection that joined a cluster (MOSN's "host"). */
export interface Host {
  /** Absent or "mux" (a RawHost says "raw"). */
  readonly kind?: "mux";
  /** Server-assigned connection id (sent in the handshake response). */
  readonly connectionId: string;
  readonly cluster: string;
  readonly hostName: string;
  readonly weight: number;
  readonly slot: number;
  readonly instance: string;
  readonly remoteAddress: string;
  readonly connectedAt: number;
  readonly session: Session;
}

/**
 * A plain MOSN agent's connection (SPEC.md §7): it carries one visitor at a time, byte for byte, and is closed
 * after it. Implemented by server/raw-link.ts.
 */
export interface RawHost {
  readonly kind: "raw";
  readonly connectionId: string;
  readonly cluster: string;
  /** The InitInfo's host_name, or the remote IP address when that is empty. */
  readonly hostName: string;
  readonly weight: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly connectedAt: number;
  /** True while no visitor holds it and it was not removed (GracefulClose, shutdown). */
  readonly idle: boolean;
  /** The visitor it carries now (route label and bytes so far), or null. */
  readonly carrying: { readonly label: string; readonly upBytes: number; readonly downBytes: number } | null;
  /**
   * Takes this idle connection for `visitor`: returns the visitor socket's new owner (the caller installs it and may
   * feed it bytes already read). Throws TunnelError ERR_INTERNAL if it is not idle.
   */
  carry(visitor: NetSocket, label: string): SocketOwner;
  /** Stops offering it: an idle connection is closed now, a busy one after its visitor. */
  retire(): void;
  /** Closes it now (server shutdown): a visitor still on it is cut off. */
  close(): void;
}

function slotKey(h: Host): string {
  return `${h.cluster}\u0000${h.hostName}\u0000${h.slot}\u0000${h.instance}`;
}

/** All clusters' hosts on this server. */
export class Registry {
  private readonly clusters = new Map<string, ClusterHosts<Host, RawHost>>();
  /** Hosts by (cluster, host name, slot, instance): a reconnecting agent replaces its stale connection at once. */
  private readonly bySlot = new Map<string, Host>();
  readonly byId = new Map<string, Host>();
  private readonly rawById = new Map<string, RawHost>();

  constructor(clusterNames: Iterable<string>) {
    for (const name of clusterNames) this.clusters.set(name, new ClusterHosts<Host, RawHost>());
  }

  /** True if the cluster is configured. */
  has(cluster: string): boolean {
    return this.clusters.has(cluster);
  }

  /**
   * Adds a host. It replaces the connection of the same agent slot: always one of the same agent process
   * (instance), and one of another instance (a restarted agent) only if that one is draining or has been silent
   * for `staleAfterMs` — so two live agents that share a host name do not keep evicting each other. Returns the
   * replaced hosts (the caller drains them) and live ones of another instance in the same slot (`shared`, for a
   * warning).
   */
  add(host: Host, staleAfterMs: number): { replaced: Host[]; shared: Host[] } {
    const replaced: Host[] = [];
    const shared: Host[] = [];
    const same = this.bySlot.get(slotKey(host));
    if (same !== undefined) replaced.push(same);
    for (const h of this.clusters.get(host.cluster)?.agents.get(host.hostName)?.hosts ?? []) {
      if (h.slot !== host.slot || h.instance === host.instance) continue;
      if (h.session.draining || h.session.closed || h.session.silentForMs > staleAfterMs) replaced.push(h);
      else shared.push(h);
    }
    for (const old of replaced) this.remove(old);
    this.bySlot.set(slotKey(host), host);
    this.byId.set(host.connectionId, host);
    this.clusters.get(host.cluster)?.add(host);
    return { replaced, shared };
  }

  /** Adds a raw host (a plain MOSN agent's connection). */
  addRaw(link: RawHost): void {
    this.rawById.set(link.connectionId, link);
    this.clusters.get(link.cluster)?.addRaw(link);
  }

  /** Removes a raw host (idempotent). */
  removeRaw(link: RawHost): void {
    if (this.rawById.get(link.connectionId) !== link) return;
    this.rawById.delete(link.connectionId);
    this.clusters.get(link.cluster)?.removeRaw(link);
  }

  /** Every raw host, for GracefulClose, status and shutdown. */
  rawHosts(): IterableIterator<RawHost> {
    return this.rawById.values();
  }

  /** Removes a host (idempotent). */
  remove(host: Host): void {
    if (this.byId.get(host.connectionId) !== host) return;
    this.byId.delete(host.connectionId);
    if (this.bySlot.get(slotKey(host)) === host) this.bySlot.delete(slotKey(host));
    this.clusters.get(host.cluster)?.remove(host);
  }

  /**
   * A host stopped taking new streams (its session is draining or closed): the session's `onUnready` event. The
   * choice relies on it (it does not look at every session per pick). Idempotent; ignores hosts not registered.
   */
  unready(host: Host): void {
    if (this.byId.get(host.connectionId) === host) this.clusters.get(host.cluster)?.unready(host);
  }

  /** Sets an agent's weight in a cluster (from its aside connection). */
  setWeight(cluster: string, hostName: string, weight: number): void {
    this.clusters.get(cluster)?.setWeight(hostName, weight);
  }

  /** True if the agent `hostName` of `cluster` has a live connection of process `instance`. */
  hasInstance(cluster: string, hostName: string, instance: string): boolean {
    for (const h of this.clusters.get(cluster)?.agents.get(hostName)?.hosts ?? []) if (h.instance === instance) return true;
    return false;
  }

  /** The weight in use for an agent of a cluster. */
  weightOf(cluster: string, hostName: string): number | undefined {
    return this.clusters.get(cluster)?.weightOf(hostName);
  }

  /**
   * Picks a ready host of the cluster for a new stream (smooth weighted round robin over agents, the connection with
   * the fewest streams within an agent), or null if none. Agents whose host name is in `exclude` are skipped (a
   * visitor being retried after an agent refused it). Raw hosts are chosen by the same weighted round robin, an
   * idle connection of theirs standing for them, unless `raw` is false (a retried visitor: only our agents).
   */
  pick(cluster: string, exclude: ReadonlySet<string> | null = null, raw = true): Host | RawHost | null {
    return this.clusters.get(cluster)?.pick(exclude, raw) ?? null;
  }

  /** Every host, for status and shutdown. */
  hosts(): IterableIterator<Host> {
    return this.byId.values();
  }
}
