/**
 * Server counters (read by the admin endpoint at scrape time, src/admin/) and the access log: one line per finished
 * stream. Everything here is per stream or per connection event, never per frame.
 */
import { WireCode, wireCodeName } from "../protocol/constants.ts";
import type { Stream } from "../mux/stream.ts";
import { logger } from "../log.ts";
import type { Host, RawHost } from "./registry.ts";
import { histogramOf, type Histogram } from "../stats/histogram.ts";
import { addTally, resetCodeLabel, type StreamTally } from "../stats/tally.ts";
import { UdpStats } from "../stats/udp.ts";
import type { DatagramFlow } from "../mux/datagram-flow.ts";
import { logCode } from "../errors.ts";

const access = logger("access");
const log = logger("route");

/** An agent gone this long has its per-agent counters dropped (agent names churn, e.g. pod names). */
export const FORGET_AGENT_MS = 15 * 60_000;

/** Counters of one server process. Plain numbers and maps; no timers. */
export class ServerStats {
  /** Handshakes by response status (null = closed or timed out before a response). */
  readonly handshakes = new Map<number | "none", number>();
  readonly streamsOpenedByRoute = new Map<string, number>();
  readonly refusedByRoute = new Map<string, number>();
  /** Visitors offered to another agent after one refused them, by `route\u0000code name`. */
  readonly retriedByRouteCode = new Map<string, number>();
  /** Resets by wire code (-1: a code outside SPEC.md §5.2). */
  readonly resetsByCode = new Map<number, number>();
  readonly limitHits = new Map<string, number>();
  streamsTotal = 0;
  streamsActive = 0;
  /** Bytes from visitors to agents. */
  bytesOut = 0;
  /** Bytes from agents to visitors. */
  bytesIn = 0;
  /** Live data connections: in the registry, or replaced and still draining. */
  readonly hosts = new Set<Host>();
  /** Live raw hosts (plain MOSN agents' connections), idle or carrying a visitor. */
  readonly rawHosts = new Set<RawHost>();
  /** Ended raw visitors of each live raw host (its one visitor, once done). */
  readonly endedByRaw = new WeakMap<RawHost, StreamTally>();
  /** Ended streams by `route\0agent host name` (route: `cluster/service`; agent "" unless perAgent). */
  readonly endedByRouteAgent = new Map<string, StreamTally>();
  /** Ended streams of each live data connection. */
  readonly endedByHost = new WeakMap<Host, StreamTally>();
  /** Resets by `route\0wire code name` ({@link resetCodeLabel}). */
  readonly resetsByRouteCode = new Map<string, number>();
  /** OPEN → ACK (target connected), seconds, by route. */
  readonly openSeconds = new Map<string, Histogram>();
  /** Heartbeat round trip, seconds, by `cluster\0agent host name` (agent "" unless perAgent). */
  readonly rttSeconds = new Map<string, Histogram>();
  /** Visitors of shared listen addresses given to a route by name (or as its default), by route index. */
  readonly routedByIndex = new Map<number, number>();
  /** Visitors of shared listen addresses that no route took, by `listen\0sni|host\0reason` (name-sniffer.ts). */
  readonly unroutedByReason = new Map<string, number>();
  /** The route name (`match`, "" for a default route) and the visitor's name of streams routed by name. */
  readonly streamNames = new WeakMap<Stream, { match: string; name: string | null }>();

  /** UDP datagrams and drops by route (`cluster/service`). */
  readonly udp = new UdpStats(true);
  /** The UDP flow of each datagram stream, for its access log line. */
  readonly flows = new WeakMap<Stream, DatagramFlow>();
  /** Routes already warned about a service of the other protocol (logged once per route). */
  private readonly mismatchWarned = new Set<string>();

  /**
   * When each agent (`cluster\0host name`) lost its last connection, oldest first (a key is deleted when its agent
   * comes back and appended when it goes), so forgetting stops at the first agent not due yet.
   */
  private readonly agentGoneAt = new Map<string, number>();
  /** Live connections (data and raw) per agent `cluster\0host name`: join and leave are O(1). */
  private readonly agentConnections = new Map<string, number>();
  /** The endedByRouteAgent keys of each agent, so that forgetting one does not scan the others'. */
  private readonly keysByAgent = new Map<string, Set<string>>();

  /**
   * `perAgent` (TUNNEL_METRICS_PER_AGENT): per-agent tallies and round trips; off, they are kept per route and per
   * cluster only (agent "" in the keys), so memory and /metrics do not grow with the number of agents.
   */
  constructor(readonly perAgent = true) {}

  hostJoined(host: Host, now = Date.now()): void {
    if (!this.hosts.has(host)) this.joined(host, now);
    this.hosts.add(host);
  }

  hostLeft(host: Host, now = Date.now()): void {
    if (this.hosts.delete(host)) this.left(host, now);
  }

  rawJoined(link: RawHost, now = Date.now()): void {
    if (!this.rawHosts.has(link)) this.joined(link, now);
    this.rawHosts.add(link);
  }

  rawLeft(link: RawHost, now = Date.now()): void {
    if (this.rawHosts.delete(link)) this.left(link, now);
  }

  private joined(c: { cluster: string; hostName: string }, now: number): void {
    const key = `${c.cluster}\u0000${c.hostName}`;
    this.agentConnections.set(key, (this.agentConnections.get(key) ?? 0) + 1);
    this.agentGoneAt.delete(key);
    this.forgetGoneAgents(now);
  }

  /** Notes when an agent lost its last connection of either kind. */
  private left(gone: { cluster: string; hostName: string }, now: number): void {
    const key = `${gone.cluster}\u0000${gone.hostName}`;
    const n = (this.agentConnections.get(key) ?? 1) - 1;
    if (n > 0) this.agentConnections.set(key, n);
    else {
      this.agentConnections.delete(key);
      this.agentGoneAt.delete(key);
      this.agentGoneAt.set(key, now);
    }
    this.forgetGoneAgents(now);
  }

  /** Drops the per-agent counters of agents gone for FORGET_AGENT_MS (checked on connection events, no timer). */
  private forgetGoneAgents(now: number): void {
    for (const [key, at] of this.agentGoneAt) {
      if (now - at < FORGET_AGENT_MS) return;
      this.agentGoneAt.delete(key);
      if (this.perAgent) this.rttSeconds.delete(key);
      for (const k of this.keysByAgent.get(key) ?? []) this.endedByRouteAgent.delete(k);
      this.keysByAgent.delete(key);
    }
  }

  /** The tally key of a route and an agent (agent "" without per-agent metrics). */
  private routeAgentKey(label: string, cluster: string, hostName: string): string {
    if (!this.perAgent) return `${label}\u0000`;
    const key = `${label}\u0000${hostName}`;
    const agent = `${cluster}\u0000${hostName}`;
    let keys = this.keysByAgent.get(agent);
    if (keys === undefined) this.keysByAgent.set(agent, (keys = new Set()));
    keys.add(key);
    return key;
  }

  rtt(host: Host, ms: number): void {
    histogramOf(this.rttSeconds, `${host.cluster}\u0000${this.perAgent ? host.hostName : ""}`).observe(ms / 1000);
  }

  handshake(status: number | null): void {
    const k = status ?? "none";
    this.handshakes.set(k, (this.handshakes.get(k) ?? 0) + 1);
  }

  streamOpened(route: string): void {
    this.streamsTotal++;
    this.streamsActive++;
    this.streamsOpenedByRoute.set(route, (this.streamsOpenedByRoute.get(route) ?? 0) + 1);
  }

  streamAcked(stream: Stream): void {
    histogramOf(this.openSeconds, stream.label).observe((performance.now() - stream.openedAt) / 1000);
  }

  /** An agent refused a stream before taking any byte of it and the visitor went to another agent. */
  streamRetried(route: string, code: number): void {
    const key = `${route}\u0000${resetCodeLabel(code)}`;
    this.retriedByRouteCode.set(key, (this.retriedByRouteCode.get(key) ?? 0) + 1);
  }

  visitorRefused(route: string): void {
    this.refusedByRoute.set(route, (this.refusedByRoute.get(route) ?? 0) + 1);
  }

  visitorRouted(routeIndex: number): void {
    this.routedByIndex.set(routeIndex, (this.routedByIndex.get(routeIndex) ?? 0) + 1);
  }

  visitorUnrouted(listen: string, kind: string, reason: string): void {
    const key = `${listen}\u0000${kind}\u0000${reason}`;
    this.unroutedByReason.set(key, (this.unroutedByReason.get(key) ?? 0) + 1);
  }

  limitHit(limit: string): void {
    this.limitHits.set(limit, (this.limitHits.get(limit) ?? 0) + 1);
  }

  /** A raw host's visitor is done: `up` visitor → agent bytes, `down` the reverse (counted as a stream). */
  rawVisitorEnded(link: RawHost & { visitor: string; carriedAt: number }, label: string, up: number, down: number, how: string, accessLog: boolean): void {
    this.streamsActive--;
    this.bytesOut += up;
    this.bytesIn += down;
    addTally(this.endedByRouteAgent, this.routeAgentKey(label, link.cluster, link.hostName), up, down);
    addTally(this.endedByRaw, link, up, down);
    if (!accessLog) return;
    const slash = label.indexOf("/");
    access.info("stream closed", {
      visitor: link.visitor,
      route: label,
      cluster: link.cluster,
      service: label.slice(slash + 1),
      host: link.hostName,
      connectionId: link.connectionId,
      kind: "raw",
      bytesIn: down,
      bytesOut: up,
      durationMs: Math.round(performance.now() - link.carriedAt),
      reason: how === "error" ? "reset" : "fin",
    });
  }

  /** Access log fields of a UDP flow: protocol and datagram counts. */
  private flowFields(stream: Stream): Record<string, unknown> {
    const flow = this.flows.get(stream);
    if (flow === undefined) return {};
    return { protocol: "udp", datagramsOut: flow.datagramsIn, datagramsIn: flow.datagramsOut, datagramsDropped: flow.dropped };
  }

  streamEnded(stream: Stream, code: number | null, host: Host | null, accessLog: boolean): void {
    this.streamsActive--;
    if (stream.state === "moved") {
      // Refused by its agent before any byte went through, and carried on by another one (streamRetried counted it).
      if (accessLog) access.info("stream retried", { visitor: `${stream.open.visitorAddress}:${stream.open.visitorPort}`, route: stream.label, host: host?.hostName, reason: wireCodeName(code ?? 0) });
      return;
    }
    this.bytesOut += stream.bytesOut;
    this.bytesIn += stream.bytesIn;
    if (code === WireCode.PROTOCOL_MISMATCH && !this.mismatchWarned.has(stream.label)) {
      this.mismatchWarned.add(stream.label);
      const want = stream.open.datagram === true ? "udp" : "tcp";
      log.warn(`the agent's service is not ${want}: give route and service the same protocol (/udp on both or neither)`, { route: stream.label, host: host?.hostName, code: logCode("ERR_SERVICE_PROTOCOL") });
    }
    if (code !== null) {
      const label = resetCodeLabel(code);
      const known = label === "UNKNOWN" ? -1 : code;
      this.resetsByCode.set(known, (this.resetsByCode.get(known) ?? 0) + 1);
      const key = `${stream.label}\u0000${label}`;
      this.resetsByRouteCode.set(key, (this.resetsByRouteCode.get(key) ?? 0) + 1);
    }
    if (host !== null) {
      addTally(this.endedByRouteAgent, this.routeAgentKey(stream.label, host.cluster, host.hostName), stream.bytesOut, stream.bytesIn);
      addTally(this.endedByHost, host, stream.bytesOut, stream.bytesIn);
    }
    if (accessLog) {
      const names = this.streamNames.get(stream);
      access.info("stream closed", {
        visitor: `${stream.open.visitorAddress}:${stream.open.visitorPort}`,
        route: stream.label,
        ...(names ? { match: names.match, name: names.name ?? undefined } : {}),
        cluster: host?.cluster,
        service: stream.open.service,
        host: host?.hostName,
        connectionId: host?.connectionId,
        bytesIn: stream.bytesIn,
        bytesOut: stream.bytesOut,
        ...this.flowFields(stream),
        durationMs: Math.round(performance.now() - stream.openedAt),
        reason: code === null ? "fin" : wireCodeName(code),
      });
    }
  }
}
