/**
 * One cluster's live hosts, grouped by agent, and the choice of one for a visitor (see registry.ts): smooth weighted
 * round robin over agents with a ready connection (an index, server/smooth-weighted.ts: O(log n) per join, leave or
 * drain, not a scan per visitor), then the agent's ready connection with the fewest open streams. Raw hosts (plain
 * MOSN agents' connections) are still scanned per pick: they take part only with TUNNEL_MOSN_AGENTS=on.
 */
import { SmoothWeighted, type WeightedEntry } from "./smooth-weighted.ts";

/** What the choice reads of a data connection (registry.ts Host). */
export interface PickableHost {
  readonly hostName: string;
  readonly weight: number;
  readonly session: { readonly closed: boolean; readonly draining: boolean; readonly activeStreams: number };
}

/** What the choice reads of a raw connection (registry.ts RawHost). */
export interface PickableRaw {
  readonly hostName: string;
  readonly weight: number;
  readonly idle: boolean;
}

/** An agent (host name) of the cluster with its live connections. */
export interface AgentEntry<Host extends PickableHost = PickableHost> {
  readonly hostName: string;
  /** Its connections, in join order. */
  readonly hosts: Set<Host>;
  /** Connections that are neither draining nor closed (as reported to {@link ClusterHosts.unready}). */
  ready: number;
  /** Its place in the round robin. */
  readonly node: WeightedEntry<AgentEntry<Host>>;
}

interface RawEntry<RawHost extends PickableRaw> {
  hostName: string;
  weight: number;
  current: number;
  links: Set<RawHost>;
  /** When its last connection closed (Date.now()). */
  emptySince: number;
}

/** A raw agent without connections for this long is forgotten (its round-robin position with it). */
const RAW_FORGET_MS = 60_000;

/** The cluster's hosts. Join, leave, drain and pick are O(log agents) (raw hosts apart). */
export class ClusterHosts<Host extends PickableHost, RawHost extends PickableRaw> {
  readonly agents = new Map<string, AgentEntry<Host>>();
  /** Raw hosts by name. */
  readonly raws = new Map<string, RawEntry<RawHost>>();
  /** Weights set at run time over an aside connection (they outlive reconnects). */
  readonly weightOverrides = new Map<string, number>();
  private readonly index = new SmoothWeighted<AgentEntry<Host>>();
  /** Hosts reported draining or closed (no longer counted in their agent's `ready`). */
  private readonly unreadyHosts = new WeakSet<Host>();

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
      const entry: { hostName: string; hosts: Set<Host>; ready: number; node?: WeightedEntry<AgentEntry<Host>> } = { hostName: host.hostName, hosts: new Set(), ready: 0 };
      entry.node = this.index.join(entry as AgentEntry<Host>, host.weight);
      agent = entry as AgentEntry<Host>;
      this.agents.set(host.hostName, agent);
    }
    this.index.setWeight(agent.node, this.weightOverrides.get(host.hostName) ?? host.weight);
    agent.hosts.add(host);
    if (host.session.closed || host.session.draining) this.unreadyHosts.add(host);
    else agent.ready++;
    this.index.setAvailable(agent.node, agent.ready > 0);
  }

  /** A host stopped taking streams (draining or closed); idempotent. */
  unready(host: Host): void {
    const agent = this.agents.get(host.hostName);
    if (agent === undefined || !agent.hosts.has(host) || this.unreadyHosts.has(host)) return;
    this.unreadyHosts.add(host);
    agent.ready--;
    this.index.setAvailable(agent.node, agent.ready > 0);
  }

  setWeight(hostName: string, weight: number): void {
    this.weightOverrides.set(hostName, weight);
    const agent = this.agents.get(hostName);
    if (agent !== undefined) this.index.setWeight(agent.node, weight);
  }

  /** The weight in use for an agent (undefined if it has no live host). */
  weightOf(hostName: string): number | undefined {
    return this.agents.get(hostName)?.node.weight;
  }

  remove(host: Host): void {
    const agent = this.agents.get(host.hostName);
    if (agent === undefined || !agent.hosts.delete(host)) return;
    if (!this.unreadyHosts.has(host)) agent.ready--;
    this.index.setAvailable(agent.node, agent.ready > 0);
    if (agent.hosts.size === 0) {
      // Forget the agent, run-time weight included (its aside sends it again when it comes back).
      this.index.leave(agent.node);
      this.agents.delete(host.hostName);
      this.weightOverrides.delete(host.hostName);
    }
  }

  pick(exclude: ReadonlySet<string> | null, raw: boolean): Host | RawHost | null {
    let rawTotal = 0;
    let rawBest: RawEntry<RawHost> | null = null;
    let rawHost: RawHost | null = null;
    for (const entry of raw ? this.raws.values() : []) {
      if (exclude !== null && exclude.has(entry.hostName)) continue;
      const idle = firstIdle(entry.links);
      if (idle === null) continue;
      entry.current += entry.weight;
      rawTotal += entry.weight;
      if (rawBest === null || entry.current > rawBest.current) {
        rawBest = entry;
        rawHost = idle;
      }
    }
    const skip: WeightedEntry<AgentEntry<Host>>[] = [];
    for (const name of exclude ?? []) {
      const agent = this.agents.get(name);
      if (agent !== undefined) skip.push(agent.node);
    }
    const round = this.index.round(skip);
    const total = rawTotal + round.total;
    // Raw hosts come first in a scan, so they win ties.
    if (rawBest !== null && (round.best === null || rawBest.current >= round.current)) {
      rawBest.current -= total;
      return rawHost;
    }
    if (round.best === null) return null;
    this.index.charge(round.best, total);
    return leastLoaded(round.best.value.hosts);
  }
}

function firstIdle<RawHost extends PickableRaw>(links: Set<RawHost>): RawHost | null {
  for (const l of links) if (l.idle) return l;
  return null;
}

/** The ready connection with the fewest open streams (the first of equals). */
function leastLoaded<Host extends PickableHost>(hosts: Set<Host>): Host | null {
  let ready: Host | null = null;
  for (const h of hosts) {
    const s = h.session;
    if (s.closed || s.draining) continue;
    if (ready === null || s.activeStreams < ready.session.activeStreams) ready = h;
  }
  return ready;
}
