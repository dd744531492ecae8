/**
 * The registry's choice as it was before it was indexed (main a169b39, src/server/registry.ts): a scan of every agent
 * per pick. Kept as the reference the indexed registry must match choice for choice (test/server/registry-index.test.ts).
 */
import type { Host, RawHost } from "../../src/server/registry.ts";

interface AgentEntry {
  hostName: string;
  weight: number;
  current: number;
  hosts: Set<Host>;
}

interface RawEntry {
  hostName: string;
  weight: number;
  current: number;
  links: Set<RawHost>;
  /** When its last connection closed (Date.now()). */
  emptySince: number;
}

/** A raw agent without connections for this long is forgotten (its round-robin position with it). */
const RAW_FORGET_MS = 60_000;

/** One cluster's live hosts, grouped by agent. */
class ClusterHosts {
  readonly agents = new Map<string, AgentEntry>();

  /** Raw hosts by name. */
  readonly raws = new Map<string, RawEntry>();

  /** Weights set at run time over an aside connection (they outlive reconnects). */
  readonly weightOverrides = new Map<string, number>();

  addRaw(link: RawHost): void {
    let entry = this.raws.get(link.hostName);
    if (entry === undefined) {
      entry = { hostName: link.hostName, weight: link.weight, current: 0, links: new Set(), emptySince: 0 };
      this.raws.set(link.hostName, entry);
    }
    entry.weight = link.weight;
    entry.links.add(link);
  }

  /**
   * Removes a raw connection. Its agent's entry stays while empty (a raw connection closes after every visitor and
   * is dialled again: its round-robin position must survive that) and is dropped once empty for RAW_FORGET_MS.
   */
  removeRaw(link: RawHost, now = Date.now()): void {
    const entry = this.raws.get(link.hostName);
    if (entry === undefined) return;
    entry.links.delete(link);
    if (entry.links.size === 0) entry.emptySince = now;
    for (const [name, e] of this.raws) if (e.links.size === 0 && now - e.emptySince > RAW_FORGET_MS) this.raws.delete(name);
  }

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
    if (agent.hosts.size === 0) {
      // Forget the agent, run-time weight included (its aside sends it again when it comes back).
      this.agents.delete(host.hostName);
      this.weightOverrides.delete(host.hostName);
    }
  }

  pick(exclude: ReadonlySet<string> | null, raw: boolean): Host | RawHost | null {
    let total = 0;
    let best: AgentEntry | RawEntry | null = null;
    let bestHost: Host | RawHost | null = null;
    for (const entry of raw ? this.raws.values() : []) {
      if (exclude !== null && exclude.has(entry.hostName)) continue;
      let idle: RawHost | null = null;
      for (const l of entry.links) {
        if (l.idle) {
          idle = l;
          break;
        }
      }
      if (idle === null) continue;
      entry.current += entry.weight;
      total += entry.weight;
      if (best === null || entry.current > best.current) {
        best = entry;
        bestHost = idle;
      }
    }
    for (const agent of this.agents.values()) {
      if (exclude !== null && exclude.has(agent.hostName)) continue;
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

function slotKey(h: Host): string {
  return `${h.cluster}\u0000${h.hostName}\u0000${h.slot}\u0000${h.instance}`;
}

/** All clusters' hosts on this server. */
export class ReferenceRegistry {
  private readonly clusters = new Map<string, ClusterHosts>();
  /** Hosts by (cluster, host name, slot, instance): a reconnecting agent replaces its stale connection at once. */
  private readonly bySlot = new Map<string, Host>();
  readonly byId = new Map<string, Host>();
  private readonly rawById = new Map<string, RawHost>();

  constructor(clusterNames: Iterable<string>) {
    for (const name of clusterNames) this.clusters.set(name, new ClusterHosts());
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
