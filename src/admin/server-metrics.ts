/**
 * The server's Prometheus metrics, computed when scraped from its stats counters and live connections (nothing here
 * runs per frame). Shared helpers for the status document (server-view.ts) too.
 */
import type { RouteConfig, ServerConfig } from "../config.ts";
import { formatHostPort } from "../config-parse.ts";
import { groupByAddress } from "../config-routes.ts";
import type { ServerHandle } from "../server/server.ts";
import type { ServerStats } from "../server/stats.ts";
import { addTally, splitKey, type StreamTally } from "../stats/tally.ts";
import { MetricsRegistry, type Labels, type Sample } from "./metrics.ts";
import { handshakeStatusLabel, processMetrics } from "./view.ts";
import { udpMetrics } from "./udp-view.ts";

/** Limits the server counts hits of (server.ts); listed so their series exist at 0. */
const KNOWN_LIMITS = ["auth_penalty", "connections", "pending_handshakes", "shutting_down"];

/** A route's listen address with its bound port. */
export function listenOf(r: RouteConfig, port: number | undefined): string {
  return formatHostPort({ host: r.listen.host, port: port ?? r.listen.port });
}

/** The routes that share a listen address by name (their default route included), as indexes into config.routes. */
export function namedRouteIndexes(config: ServerConfig): Set<number> {
  const named = groupByAddress(config.routes).filter((g) => g.some((r) => r.match !== null)).flat();
  return new Set(named.map((r) => config.routes.indexOf(r)));
}

/** Splits a route label `cluster/service`. */
function route(label: string): { cluster: string; service: string } {
  const slash = label.indexOf("/");
  return slash < 0 ? { cluster: "", service: label } : { cluster: label.slice(0, slash), service: label.slice(slash + 1) };
}

/** The agent part of a series key: the host name with per-agent series, else "" (the label is left out). */
function agentOf(stats: ServerStats, hostName: string): string {
  return stats.perAgent ? hostName : "";
}

/** The `agent` label, with per-agent series only. */
function agentLabel(stats: ServerStats, agent: string): Labels {
  return stats.perAgent ? { agent } : {};
}

/** Open streams (and raw connections' visitors) by `route\0agent host name`, with their bytes so far. */
function liveTallies(stats: ServerStats): Map<string, StreamTally> {
  const live = new Map<string, StreamTally>();
  for (const h of stats.hosts) {
    const agent = agentOf(stats, h.hostName);
    for (const s of h.session.streams.values()) addTally(live, `${s.label}\u0000${agent}`, s.bytesOut, s.bytesIn);
  }
  for (const r of stats.rawHosts) {
    const c = r.carrying;
    if (c !== null) addTally(live, `${c.label}\u0000${agentOf(stats, r.hostName)}`, c.upBytes, c.downBytes);
  }
  return live;
}

/** Raw connections (plain MOSN agents) by cluster, agent and state: `idle` (available) or `busy` (carrying a visitor). */
function rawConnectionSamples(stats: ServerStats): Sample[] {
  const counts = new Map<string, { idle: number; busy: number }>();
  for (const r of stats.rawHosts) {
    const key = `${r.cluster}\u0000${agentOf(stats, r.hostName)}`;
    const c = counts.get(key) ?? { idle: 0, busy: 0 };
    c[r.carrying !== null ? "busy" : "idle"]++;
    counts.set(key, c);
  }
  return [...counts].flatMap(([key, c]): Sample[] => {
    const [cluster = "", agent = ""] = splitKey(key);
    const a = agentLabel(stats, agent);
    return [[{ cluster, ...a, state: "idle" }, c.idle], [{ cluster, ...a, state: "busy" }, c.busy]];
  });
}

function* tallySamples(
  stats: ServerStats,
  keys: Iterable<string>,
  value: (key: string) => number,
  extra: Labels = {},
): Generator<Sample> {
  for (const key of keys) {
    const [label = "", agent = ""] = splitKey(key);
    yield [{ ...route(label), ...agentLabel(stats, agent), ...extra }, value(key)];
  }
}

function sameListen(a: RouteConfig, b: RouteConfig): boolean {
  return a.listen.port === b.listen.port && a.listen.host.toLowerCase() === b.listen.host.toLowerCase();
}

/** The counters of routing by name (routes sharing a listen address). */
function nameMetrics(registry: MetricsRegistry, config: ServerConfig, handle: ServerHandle): void {
  const { stats } = handle;
  const named = namedRouteIndexes(config);
  registry
    .counter("backchannel_server_name_routed_total",
      "Visitors of a listen address shared by name given to a route, by listen address, match (sni, host), route name (\"\": the default route), cluster and service.",
      () => [...named].map((i): Sample => {
        const r = config.routes[i] as RouteConfig;
        const match = r.match?.kind ?? config.routes.find((x) => sameListen(x, r) && x.match !== null)?.match?.kind ?? "";
        return [{ listen: listenOf(r, handle.routePorts[i]), match, name: r.match?.name ?? "", cluster: r.cluster, service: r.service },
          stats.routedByIndex.get(i) ?? 0];
      }))
    .counter("backchannel_server_name_unrouted_total",
      "Visitors of a listen address shared by name that no route took, by listen address, match and reason (no_match, timeout, malformed, …).",
      () => [...stats.unroutedByReason].map(([key, n]): Sample => {
        const [listen = "", match = "", reason = ""] = key.split("\u0000");
        return [{ listen, match, reason }, n];
      }));
}

/** Agents and their connections: gauges by cluster and agent, and handshakes by status. */
function connectionMetrics(registry: MetricsRegistry, config: ServerConfig, stats: ServerStats): MetricsRegistry {
  return registry
    .gauge("backchannel_server_agents", "Agents (host names) with at least one data connection, by cluster.", () => {
      const agents = new Map<string, Set<string>>(config.clusters.map((c) => [c.name, new Set()]));
      for (const h of [...stats.hosts, ...stats.rawHosts]) agents.get(h.cluster)?.add(h.hostName);
      return [...agents].map(([cluster, names]): Sample => [{ cluster }, names.size]);
    })
    .gauge("backchannel_server_connections", "Agent data connections by cluster, agent (TUNNEL_METRICS_PER_AGENT=on) and state (ready, draining).", () => {
      // Both states for every agent, so a series drops to 0 rather than vanishing while the agent is there.
      const counts = new Map<string, { ready: number; draining: number }>();
      for (const h of stats.hosts) {
        const key = `${h.cluster}\u0000${agentOf(stats, h.hostName)}`;
        const c = counts.get(key) ?? { ready: 0, draining: 0 };
        c[h.session.draining ? "draining" : "ready"]++;
        counts.set(key, c);
      }
      return [...counts].flatMap(([key, c]): Sample[] => {
        const [cluster = "", agent = ""] = splitKey(key);
        const a = agentLabel(stats, agent);
        return [[{ cluster, ...a, state: "ready" }, c.ready], [{ cluster, ...a, state: "draining" }, c.draining]];
      });
    })
    .gauge("backchannel_server_raw_connections",
      "Raw connections of plain MOSN agents by cluster, agent and state (idle: available; busy: carrying a visitor).",
      () => rawConnectionSamples(stats))
    .counter("backchannel_server_handshakes_total", "Agent handshakes by response status (no_response: none was sent).", () =>
      [...stats.handshakes].map(([status, n]): Sample => [{ status: handshakeStatusLabel(status) }, n]));
}

/** The server's Prometheus metrics: a function that renders them when scraped. */
export function serverMetrics(config: ServerConfig, handle: ServerHandle): () => string {
  const { stats } = handle;
  let live = new Map<string, StreamTally>();
  const keys = () => new Set([...stats.endedByRouteAgent.keys(), ...live.keys()]);
  const sum = (key: string, f: (t: StreamTally) => number) => {
    const a = stats.endedByRouteAgent.get(key);
    const b = live.get(key);
    return (a ? f(a) : 0) + (b ? f(b) : 0);
  };
  const registry = connectionMetrics(processMetrics(new MetricsRegistry(), "server"), config, stats)
    .gauge("backchannel_server_streams_open", "Visitor streams open now, by cluster, service and agent.", () =>
      tallySamples(stats, live.keys(), (k) => live.get(k)?.streams ?? 0))
    .counter("backchannel_server_streams_total", "Visitor streams opened, by cluster, service and agent.", () =>
      tallySamples(stats, keys(), (k) => sum(k, (t) => t.streams)))
    .counter("backchannel_server_stream_bytes_total",
      "Stream bytes by cluster, service, agent and direction (upstream: visitor to agent; downstream: agent to visitor).",
      function* () {
        const all = keys();
        yield* tallySamples(stats, all, (k) => sum(k, (t) => t.upBytes), { direction: "upstream" });
        yield* tallySamples(stats, all, (k) => sum(k, (t) => t.downBytes), { direction: "downstream" });
      })
    .histogram("backchannel_server_stream_open_seconds", "Time from OPEN to the agent's ACK (target connected), by route.", () =>
      [...stats.openSeconds].map(([label, h]) => [route(label), h] as const))
    .histogram("backchannel_server_heartbeat_rtt_seconds", "Heartbeat round trip to agents, by cluster and agent.", () =>
      [...stats.rttSeconds].map(([key, h]) => {
        const [cluster = "", agent = ""] = splitKey(key);
        return [{ cluster, ...agentLabel(stats, agent) }, h] as const;
      }))
    .counter("backchannel_server_stream_resets_total", "Streams that ended with a reset, by cluster, service and code.", () =>
      [...stats.resetsByRouteCode].map(([key, n]): Sample => {
        const [label = "", code = ""] = splitKey(key);
        return [{ ...route(label), code }, n];
      }))
    .counter("backchannel_server_streams_retried_total", "Streams an agent refused before taking any byte, carried on by another agent, by cluster, service and code.", () =>
      [...stats.retriedByRouteCode].map(([key, n]): Sample => {
        const [label = "", code = ""] = splitKey(key);
        return [{ ...route(label), code }, n];
      }))
    .counter("backchannel_server_visitors_refused_total", "Visitors closed at once because no agent connection was available.", () =>
      // Once per cluster/service: several routes (ports, names) may lead to the same one.
      [...new Set(config.routes.map((r) => `${r.cluster}/${r.service}`))].map((label): Sample => [route(label), stats.refusedByRoute.get(label) ?? 0]))
    .counter("backchannel_server_limit_hits_total", "Connections refused by a limit, by limit.", () => {
      const names = new Set([...KNOWN_LIMITS, ...stats.limitHits.keys()]);
      return [...names].map((limit): Sample => [{ limit }, stats.limitHits.get(limit) ?? 0]);
    });
  nameMetrics(registry, config, handle);
  const udpLabels = new Map(handle.udpRoutes.map((u) => [u.label, route(u.label)]));
  udpMetrics(registry, "server", stats.udp, udpLabels, () => {
    const open = new Map<string, number>();
    for (const u of handle.udpRoutes) open.set(u.label, (open.get(u.label) ?? 0) + u.flows.size);
    return open;
  });
  return () => {
    live = liveTallies(stats);
    return registry.render();
  };
}
