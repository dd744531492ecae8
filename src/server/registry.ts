/**
 * The cluster registry: which agent connections (hosts) are live in each cluster, and how a visitor picks one.
 *
 * Balancing is per agent (host name), not per connection, so an agent's share does not depend on how many
 * connections it keeps: smooth weighted round-robin (nginx's) over agents with at least one ready host gives each
 * agent exactly its weight's share of new visitors; then the agent's ready connection with the fewest open streams.
 * (Dividing weights by load was tried: it skews shares toward the square root of the weights under concurrency.)
 */
import type { Session } from "../mux/session.ts";

/** A data connection that joined a cluster (MOSN's "host"). */
export interface Host {
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

interface AgentEntry {
  hostName: string;
  weight: number;
  current: number;
  hosts: Set<Host>;
}

/** One cluster's live hosts, grouped by agent. */
class ClusterHosts {
  readonly agents = new Map<string, AgentEntry>();

  /** Weights set at run time over an aside connection (they outlive reconnects). */
  readonly weightOverrides = new Map<string, number>();

  add(host: Host): void {
    let agent = this.agents.get(host.hostName);
    if (agent === undefined) {
      agent = { hostName: host.hostName, weight: host.weight, current: 0, hosts: new Set() };
      this.agents.set(host.hostName, agent);
    }
    agent.weight = this.weightOverrides.get(host.hostName) ?? host.weight;
    agent.hosts.add(host);
  }

  setWeight(hostName: string, weight: number): void {
    this.weightOverrides.set(hostName, weight);
    const agent = this.agents.get(hostName);
    if (agent !== undefined) agent.weight = weight;
  }

  /** The weight in use for an agent (undefined if it has no live host). */
  weightOf(hostName: string): number | undefined {
    return this.agents.get(hostName)?.weight;
  }

  remove(host: Host): void {
    const agent = this.agents.get(host.hostName);
    if (agent === undefined) return;
    agent.hosts.delete(host);
    if (agent.hosts.size === 0) this.agents.delete(host.hostName);
  }

  pick(): Host | null {
    let total = 0;
    let best: AgentEntry | null = null;
    let bestHost: Host | null = null;
    for (const agent of this.agents.values()) {
      let ready: Host | null = null;
      for (const h of agent.hosts) {
        const s = h.session;
        if (s.closed || s.draining) continue;
        if (ready === null || s.activeStreams < ready.session.activeStreams) ready = h;
      }
      if (ready === null) continue;
      agent.current += agent.weight;
      total += agent.weight;
      if (best === null || agent.current > best.current) {
        best = agent;
        bestHost = ready;
      }
    }
    if (best !== null) best.current -= total;
    return bestHost;
  }
}

/** All clusters' hosts on this server. */
export class Registry {
  private readonly clusters = new Map<string, ClusterHosts>();
  /** Hosts by (cluster, host name, slot): a reconnecting agent replaces its stale connection at once. */
  private readonly bySlot = new Map<string, Host>();
  readonly byId = new Map<string, Host>();

  constructor(clusterNames: Iterable<string>) {
    for (const name of clusterNames) this.clusters.set(name, new ClusterHosts());
  }

  /** True if the cluster is configured. */
  has(cluster: string): boolean {
    return this.clusters.has(cluster);
  }

  /**
   * Adds a host. Returns the host it replaces (same cluster, host name and slot), which the caller drains.
   */
  add(host: Host): Host | null {
    const key = `${host.cluster}\u0000${host.hostName}\u0000${host.slot}`;
    const old = this.bySlot.get(key) ?? null;
    if (old !== null) this.remove(old);
    this.bySlot.set(key, host);
    this.byId.set(host.connectionId, host);
    this.clusters.get(host.cluster)?.add(host);
    return old;
  }

  /** Removes a host (idempotent). */
  remove(host: Host): void {
    if (this.byId.get(host.connectionId) !== host) return;
    this.byId.delete(host.connectionId);
    const key = `${host.cluster}\u0000${host.hostName}\u0000${host.slot}`;
    if (this.bySlot.get(key) === host) this.bySlot.delete(key);
    this.clusters.get(host.cluster)?.remove(host);
  }

  /** Sets an agent's weight in a cluster (from its aside connection). */
  setWeight(cluster: string, hostName: string, weight: number): void {
    this.clusters.get(cluster)?.setWeight(hostName, weight);
  }

  /** The weight in use for an agent of a cluster. */
  weightOf(cluster: string, hostName: string): number | undefined {
    return this.clusters.get(cluster)?.weightOf(hostName);
  }

  /** Picks a ready host of the cluster for a new stream, or null if none. */
  pick(cluster: string): Host | null {
    return this.clusters.get(cluster)?.pick() ?? null;
  }

  /** Every host, for status and shutdown. */
  hosts(): IterableIterator<Host> {
    return this.byId.values();
  }
}
