/**
 * What the admin endpoint shows of a server: the /api/status document (computed when asked from the server's
 * stats counters and its live connections) and its metrics (server-metrics.ts).
 */
import pkg from "../../package.json" with { type: "json" };
import type { ServerConfig } from "../config.ts";
import { matchText } from "../config-routes.ts";
import type { ServerHandle } from "../server/server.ts";
import type { Host, RawHost } from "../server/registry.ts";
import type { UdpTally } from "../stats/udp.ts";
import type { AdminView } from "./view.ts";
import { listenOf, namedRouteIndexes, serverMetrics } from "./server-metrics.ts";

function hostStatus(handle: ServerHandle, h: Host) {
  let streams = 0;
  let upBytes = 0;
  let downBytes = 0;
  for (const s of h.session.streams.values()) {
    streams++;
    upBytes += s.bytesOut;
    downBytes += s.bytesIn;
  }
  const ended = handle.stats.endedByHost.get(h);
  const rtt = h.session.rttMs;
  return {
    kind: "mux" as const,
    hostName: h.hostName,
    weight: handle.registry.weightOf(h.cluster, h.hostName) ?? h.weight,
    connectionId: h.connectionId,
    remoteAddress: h.remoteAddress,
    slot: h.slot,
    streams,
    streamsTotal: streams + (ended?.streams ?? 0),
    upBytes: upBytes + (ended?.upBytes ?? 0),
    downBytes: downBytes + (ended?.downBytes ?? 0),
    rttMs: rtt < 0 ? null : Math.round(rtt * 100) / 100,
    connectedAt: new Date(h.connectedAt).toISOString(),
    draining: h.session.draining,
  };
}

/** A raw connection as /api/status shows it: the fields of a host, `kind: "raw"` and `state` idle or busy. */
function rawStatus(handle: ServerHandle, r: RawHost) {
  const c = r.carrying;
  const ended = handle.stats.endedByRaw.get(r);
  return {
    kind: "raw" as const,
    hostName: r.hostName,
    weight: r.weight,
    connectionId: r.connectionId,
    remoteAddress: r.remoteAddress,
    slot: null,
    streams: c === null ? 0 : 1,
    streamsTotal: (c === null ? 0 : 1) + (ended?.streams ?? 0),
    upBytes: (c?.upBytes ?? 0) + (ended?.upBytes ?? 0),
    downBytes: (c?.downBytes ?? 0) + (ended?.downBytes ?? 0),
    rttMs: null,
    connectedAt: new Date(r.connectedAt).toISOString(),
    draining: false,
    state: c === null ? ("idle" as const) : ("busy" as const),
  };
}

/** Hosts listed per cluster by /api/status unless `?limit=` asks for another number (at most STATUS_HOSTS_MAX). */
export const STATUS_HOSTS_DEFAULT = 1000;
const STATUS_HOSTS_MAX = 100_000;

/** `?offset=` and `?limit=` of /api/status: which of each cluster's hosts are listed. */
function page(query: URLSearchParams | undefined): { offset: number; limit: number } {
  const int = (name: string, def: number, max: number): number => {
    const n = Number(query?.get(name) ?? def);
    return Number.isSafeInteger(n) && n >= 0 ? Math.min(n, max) : def;
  };
  return { offset: int("offset", 0, Number.MAX_SAFE_INTEGER), limit: int("limit", STATUS_HOSTS_DEFAULT, STATUS_HOSTS_MAX) };
}

/**
 * Each cluster with `hostsTotal`, `agents` (distinct host names) and one page of its hosts (data connections in join
 * order, then raw ones): `hostsOffset` and up to `limit` from there, so the document stays small with many agents.
 */
function clusterStatus(config: ServerConfig, handle: ServerHandle, query: URLSearchParams | undefined) {
  const { offset, limit } = page(query);
  const byCluster = new Map<string, (Host | RawHost)[]>(config.clusters.map((c) => [c.name, []]));
  for (const h of handle.stats.hosts) byCluster.get(h.cluster)?.push(h);
  for (const r of handle.stats.rawHosts) byCluster.get(r.cluster)?.push(r);
  return config.clusters.map((c) => {
    const all = byCluster.get(c.name) ?? [];
    return {
      name: c.name,
      policy: c.policy,
      agents: new Set(all.map((h) => h.hostName)).size,
      hostsTotal: all.length,
      hostsOffset: offset,
      hosts: all.slice(offset, offset + limit).map((h) => (h.kind === "raw" ? rawStatus(handle, h) : hostStatus(handle, h))),
    };
  });
}

function status(config: ServerConfig, handle: ServerHandle, ready: boolean, query?: URLSearchParams) {
  const { stats } = handle;
  const named = namedRouteIndexes(config);
  const hosts = [...stats.hosts];
  const clusters = clusterStatus(config, handle, query);
  // Ended streams' bytes are in stats; open streams' so far are read from them.
  const openByRoute = new Map<string, number>();
  let upBytes = stats.bytesOut;
  let downBytes = stats.bytesIn;
  for (const h of hosts) {
    for (const s of h.session.streams.values()) {
      openByRoute.set(s.label, (openByRoute.get(s.label) ?? 0) + 1);
      upBytes += s.bytesOut;
      downBytes += s.bytesIn;
    }
  }
  for (const r of stats.rawHosts) {
    const c = r.carrying;
    if (c === null) continue;
    openByRoute.set(c.label, (openByRoute.get(c.label) ?? 0) + 1);
    upBytes += c.upBytes;
    downBytes += c.downBytes;
  }
  return {
    mode: "server" as const,
    version: pkg.version,
    ready,
    now: new Date().toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    totals: {
      streamsOpen: stats.streamsActive,
      streamsTotal: stats.streamsTotal,
      upBytes,
      downBytes,
      visitorsRefused: [...stats.refusedByRoute.values()].reduce((a, b) => a + b, 0),
      visitorsUnrouted: [...stats.unroutedByReason.values()].reduce((a, b) => a + b, 0),
    },
    clusters,
    routes: config.routes.map((r, i) => {
      const label = `${r.cluster}/${r.service}`;
      const byName = named.has(i);
      return {
        listen: listenOf(r, handle.routePorts[i]),
        protocol: r.protocol,
        /** `sni=NAME`/`host=NAME`, `default` on an address shared by name, "" for a route alone on its address. */
        name: r.match !== null ? matchText(r.match) : byName ? "default" : "",
        match: r.match,
        routed: byName ? (stats.routedByIndex.get(i) ?? 0) : null,
        cluster: r.cluster,
        service: r.service,
        streamsOpen: openByRoute.get(label) ?? 0,
        streamsTotal: stats.streamsOpenedByRoute.get(label) ?? 0,
        refused: stats.refusedByRoute.get(label) ?? 0,
        ...(r.protocol === "udp" ? { udp: udpStatus(stats.udp.tally(label)) } : {}),
      };
    }),
  };
}

/** A UDP route's counters in /api/status (datagrams and drops of every route with its cluster/service). */
function udpStatus(t: UdpTally): Record<string, number> {
  return { datagramsUp: t.datagramsUp, datagramsDown: t.datagramsDown, bytesUp: t.bytesUp, bytesDown: t.bytesDown,
    dropped: [...t.dropped.values()].reduce((a, b) => a + b, 0) };
}

/** The admin view of a running server. */
export function serverView(config: ServerConfig, handle: ServerHandle): AdminView {
  const ready = () => (handle.closing ? "shutting down" : null);
  return {
    notReady: ready,
    status: (query) => status(config, handle, ready() === null, query),
    metrics: serverMetrics(config, handle),
  };
}
