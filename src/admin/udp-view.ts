/**
 * UDP metrics of either role (stats/udp.ts): datagrams and bytes each way, drops by reason, open flows. Labels:
 * server `cluster`, `service` (the route's); agent `cluster`, `service`.
 */
import type { DropReason } from "../mux/datagram-flow.ts";
import type { UdpStats } from "../stats/udp.ts";
import type { MetricsRegistry, Sample } from "./metrics.ts";

/** Every drop reason, so that each series exists at 0. */
const DROP_REASONS: readonly DropReason[] = ["oversized", "flow_limit", "no_agent", "queue_full", "send_failed"];

/**
 * Adds the `backchannel_<role>_udp_*` families. `labels` are the UDP routes' (server) or services' (agent) labels in
 * the stats (`cluster/service` or `service`) with their metric labels; `openFlows` counts the open flows of each.
 */
export function udpMetrics(
  registry: MetricsRegistry,
  role: "server" | "agent",
  udp: UdpStats,
  labels: ReadonlyMap<string, { cluster: string; service: string }>,
  openFlows: () => ReadonlyMap<string, number>,
): MetricsRegistry {
  const each = <T>(f: (label: string, tags: { cluster: string; service: string }) => T[]): T[] => [...labels].flatMap(([l, t]) => f(l, t));
  return registry
    .counter(`backchannel_${role}_udp_datagrams_total`,
      "UDP datagrams carried, by cluster, service and direction (upstream: visitor → service).",
      () => each((l, t): Sample[] => {
        const x = udp.tally(l);
        return [[{ ...t, direction: "upstream" }, x.datagramsUp], [{ ...t, direction: "downstream" }, x.datagramsDown]];
      }))
    .counter(`backchannel_${role}_udp_bytes_total`, "UDP payload bytes carried, by cluster, service and direction.",
      () => each((l, t): Sample[] => {
        const x = udp.tally(l);
        return [[{ ...t, direction: "upstream" }, x.bytesUp], [{ ...t, direction: "downstream" }, x.bytesDown]];
      }))
    .counter(`backchannel_${role}_udp_dropped_total`,
      "UDP datagrams dropped, by cluster, service and reason (oversized, flow_limit, no_agent, queue_full, send_failed).",
      () => each((l, t): Sample[] => DROP_REASONS.map((reason): Sample => [{ ...t, reason }, udp.tally(l).dropped.get(reason) ?? 0])))
    .gauge(`backchannel_${role}_udp_flows_open`, "UDP flows open now, by cluster and service.", () => {
      const open = openFlows();
      return each((l, t): Sample[] => [[t, open.get(l) ?? 0]]);
    });
}
