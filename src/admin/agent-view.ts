/**
 * What the admin endpoint shows of an agent: Prometheus metrics and the /api/status document, computed when asked
 * from the agent's stats counters and its live connection slots (nothing here runs per frame).
 */
import pkg from "../../package.json" with { type: "json" };
import type { AgentConfig } from "../config.ts";
import type { AgentHandle } from "../agent/agent.ts";
import type { ConnectionSlot, SlotState } from "../agent/connection.ts";
import type { RawSlot } from "../agent/raw-slot.ts";
import { addTally, splitKey, type StreamTally } from "../stats/tally.ts";
import { MetricsRegistry, type Sample } from "./metrics.ts";
import { udpMetrics } from "./udp-view.ts";
import { handshakeStatusLabel, processMetrics, type AdminView } from "./view.ts";

const SLOT_STATES: readonly SlotState[] = ["dialing", "handshaking", "ready", "draining", "backoff", "stopped"];

/** Open streams by service with their bytes so far (upstream: written to the target). */
function liveTallies(handle: AgentHandle): Map<string, StreamTally> {
  const live = new Map<string, StreamTally>();
  for (const s of handle.stats.openStreams) addTally(live, s.label, s.bytesIn, s.bytesOut);
  return live;
}

function metrics(config: AgentConfig, handle: AgentHandle): () => string {
  const { stats, services } = handle;
  const cluster = config.cluster;
  let live = new Map<string, StreamTally>();
  // Configured services first (so their series exist at 0), then "" for refused streams if any ended.
  const serviceNames = () => new Set([...config.services.map((s) => s.name), ...stats.ended.keys(), ...live.keys()]);
  const sum = (name: string, f: (t: StreamTally) => number) => {
    const a = stats.ended.get(name);
    const b = live.get(name);
    return (a ? f(a) : 0) + (b ? f(b) : 0);
  };
  const registry = processMetrics(new MetricsRegistry(), "agent")
    .gauge("backchannel_agent_info", "Always 1; labels carry the agent's cluster and host name.", () => [[{ cluster, agent: config.hostname }, 1]])
    .gauge("backchannel_agent_servers", "Servers the agent keeps connections to.", () => [[{}, handle.peers.size]])
    .gauge("backchannel_agent_connections", "Data connection slots by server and state.", function* () {
      for (const peer of handle.peers.values()) {
        for (const state of SLOT_STATES) {
          yield [{ server: peer.key, state }, peer.slots.filter((s) => s.state === state).length];
        }
      }
    })
    .counter("backchannel_agent_handshakes_total", "Handshakes by the server's response status (no_response: none came).", () =>
      [...stats.handshakes].map(([status, n]): Sample => [{ status: handshakeStatusLabel(status) }, n]))
    .counter("backchannel_agent_reconnects_total", "Lost connections dialled again, by server.", () => {
      const servers = new Set([...handle.peers.keys(), ...stats.reconnects.keys()]);
      return [...servers].map((server): Sample => [{ server }, stats.reconnects.get(server) ?? 0]);
    })
    .gauge("backchannel_agent_streams_open", "Streams open now, by cluster and service.", () =>
      [...serviceNames()].map((service): Sample => [{ cluster, service }, live.get(service)?.streams ?? 0]))
    .counter("backchannel_agent_streams_total", "Streams servers opened, by cluster and service.", () =>
      [...serviceNames()].map((service): Sample => [{ cluster, service }, sum(service, (t) => t.streams)]))
    .counter("backchannel_agent_stream_bytes_total",
      "Stream bytes by cluster, service and direction (upstream: to the target; downstream: from the target).",
      function* () {
        const names = serviceNames();
        for (const service of names) yield [{ cluster, service, direction: "upstream" }, sum(service, (t) => t.upBytes)];
        for (const service of names) yield [{ cluster, service, direction: "downstream" }, sum(service, (t) => t.downBytes)];
      })
    .counter("backchannel_agent_stream_resets_total", "Streams that ended with a reset, by cluster, service and code.", () =>
      [...stats.resets].map(([key, n]): Sample => {
        const [service = "", code = ""] = splitKey(key);
        return [{ cluster, service, code }, n];
      }))
    .counter("backchannel_agent_streams_refused_total", "Streams refused before reaching a target, by reason.", () => [
      [{ reason: "unknown_service" }, services.unknownServiceCount],
      [{ reason: "dial_failed" }, services.dialFailures],
      [{ reason: "stream_limit" }, stats.refused.stream_limit],
      [{ reason: "inbound_budget" }, stats.refused.inbound_budget],
      [{ reason: "protocol_mismatch" }, services.protocolMismatchCount],
    ])
    .histogram("backchannel_agent_heartbeat_rtt_seconds", "Heartbeat round trip to servers, by server.", () =>
      [...stats.rttSeconds].map(([server, h]) => [{ server }, h] as const));
  const udpServices = config.services.filter((s) => s.protocol === "udp");
  udpMetrics(registry, "agent", services.udp, new Map(udpServices.map((s) => [s.name, { cluster, service: s.name }])), () => {
    const open = new Map<string, number>();
    for (const f of services.flows.flows.values()) {
      const label = f.stream?.label ?? "";
      open.set(label, (open.get(label) ?? 0) + 1);
    }
    return open;
  });
  return () => {
    live = liveTallies(handle);
    return registry.render();
  };
}

function slotStatus(s: ConnectionSlot | RawSlot) {
  const rtt = s.session?.rttMs ?? -1;
  return {
    slot: s.slot,
    state: s.state,
    connectionId: s.connectionId,
    rttMs: rtt < 0 ? null : Math.round(rtt * 100) / 100,
    streams: s.activeStreams,
    reconnects: s.reconnects,
    lastStatus: s.lastStatus,
  };
}

function status(config: AgentConfig, handle: AgentHandle, ready: boolean) {
  const { stats } = handle;
  const live = liveTallies(handle);
  const total = (f: (t: StreamTally) => number) =>
    [...stats.ended.values(), ...live.values()].reduce((a, t) => a + f(t), 0);
  return {
    mode: "agent" as const,
    version: pkg.version,
    ready,
    now: new Date().toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    cluster: config.cluster,
    hostName: config.hostname,
    /** TUNNEL_PROTOCOL: `mosn` slots are raw connections (no connection id, RTT or streams beyond 0/1). */
    protocol: config.protocol,
    totals: {
      streamsOpen: stats.openStreams.size,
      streamsTotal: total((t) => t.streams),
      upBytes: total((t) => t.upBytes),
      downBytes: total((t) => t.downBytes),
    },
    servers: [...handle.peers.values()].map((p) => ({
      server: p.key,
      ready: p.ready,
      connections: p.slots.map(slotStatus),
      aside: { state: p.aside.state, connectionId: p.aside.connectionId },
    })),
    services: config.services.map((s) => {
      const ended = stats.ended.get(s.name);
      const open = live.get(s.name);
      return {
        name: s.name,
        target: `${s.host.includes(":") ? `[${s.host}]` : s.host}:${s.port}`,
        proxyProtocol: s.proxyProtocol,
        protocol: s.protocol,
        streamsOpen: open?.streams ?? 0,
        streamsTotal: (ended?.streams ?? 0) + (open?.streams ?? 0),
        upBytes: (ended?.upBytes ?? 0) + (open?.upBytes ?? 0),
        downBytes: (ended?.downBytes ?? 0) + (open?.downBytes ?? 0),
      };
    }),
  };
}

/** Why the agent is not ready: closing, no server known, or a server without a ready data connection. */
function notReady(handle: AgentHandle): string | null {
  if (handle.closing) return "shutting down";
  if (handle.peers.size === 0) return "no server known yet";
  const down = [...handle.peers.values()].filter((p) => !p.ready).map((p) => p.key);
  return down.length === 0 ? null : `no ready connection to ${down.join(", ")}`;
}

/** The admin view of a running agent. */
export function agentView(config: AgentConfig, handle: AgentHandle): AdminView {
  return {
    notReady: () => notReady(handle),
    status: () => status(config, handle, notReady(handle) === null),
    metrics: metrics(config, handle),
  };
}
