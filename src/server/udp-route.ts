/**
 * A UDP route (`host:port/udp=cluster/service`): one bound UDP socket; each visitor address (ip:port) is a flow, a
 * datagram stream (SPEC.md §2.5) on a host picked from the route's cluster, opened by the visitor's first datagram.
 * Replies on the stream go back to that visitor from the route's socket. Flows are capped (TUNNEL_UDP_MAX_FLOWS) and
 * closed when idle (TUNNEL_UDP_IDLE_TIMEOUT_MS); every datagram that cannot be carried is dropped and counted.
 */
import { isIPv4 } from "node:net";
import type { RouteConfig, ServerConfig } from "../config.ts";
import { MAX_DATAGRAM_BYTES, WireCode } from "../protocol/constants.ts";
import { bindUdp, type UdpEndpoint } from "../transport/udp.ts";
import { DatagramFlow, FlowTable, type FlowCounters } from "../mux/datagram-flow.ts";
import { logCode } from "../errors.ts";
import { logger } from "../log.ts";
import type { Registry } from "./registry.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("route");

/** One UDP route: its socket and its flows. */
export class UdpRoute {
  /** `cluster/service`: the label of metrics and logs. */
  readonly label: string;
  readonly flows: FlowTable;
  private endpoint: UdpEndpoint | null = null;
  private readonly counters: FlowCounters;
  private readonly routeAddress: string;

  private constructor(
    readonly route: RouteConfig,
    config: ServerConfig,
    private readonly registry: Registry,
    private readonly stats: ServerStats,
  ) {
    this.label = `${route.cluster}/${route.service}`;
    this.flows = new FlowTable(config.udpIdleTimeoutMs, config.udpMaxFlows);
    this.counters = stats.udp.counters(this.label);
    const h = route.listen.host;
    this.routeAddress = isIPv4(h) && h !== "0.0.0.0" ? h : "";
  }

  /** Binds the route's socket. Throws TunnelError ERR_LISTEN if the address cannot be bound. */
  static async open(route: RouteConfig, config: ServerConfig, registry: Registry, stats: ServerStats): Promise<UdpRoute> {
    const r = new UdpRoute(route, config, registry, stats);
    try {
      r.endpoint = await bindUdp({
        host: route.listen.host,
        port: route.listen.port,
        onDatagram: (data, port, address, truncated) => r.onDatagram(data, port, address, truncated),
        onError: (e) => log.debug("UDP route socket error", { route: r.label, error: e.message }),
      });
    } catch (e) {
      r.flows.close();
      throw e;
    }
    return r;
  }

  /** Bound port. */
  get port(): number {
    return this.endpoint?.port ?? 0;
  }

  /** Stops taking datagrams and ends every flow (`code` on their streams). */
  close(code: number = WireCode.SHUTTING_DOWN): void {
    this.endpoint?.close();
    this.endpoint = null;
    this.flows.close(code);
  }

  private onDatagram(data: Uint8Array, port: number, address: string, truncated: boolean): void {
    const key = `${address}|${port}`;
    const flow = this.flows.get(key) ?? this.openFlow(key, port, address, truncated || data.byteLength > MAX_DATAGRAM_BYTES);
    flow?.receive(data, truncated);
  }

  /** A new visitor address: a flow on a host of the cluster, or null (the datagram is dropped and counted). */
  private openFlow(key: string, port: number, address: string, oversized: boolean): DatagramFlow | null {
    const endpoint = this.endpoint;
    if (endpoint === null) return null;
    if (oversized) {
      this.counters.dropped("oversized"); // never opens a flow
      return null;
    }
    if (!this.flows.hasRoom) {
      this.counters.dropped("flow_limit");
      return null;
    }
    let flow: DatagramFlow | null = null; // made once a connection has room: most datagrams of a flood are dropped
    let full = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const host = this.registry.pick(this.route.cluster, null, false); // a MOSN raw host carries TCP only
      if (host === null || host.kind === "raw") break;
      // At most half of a connection's streams are UDP flows: a flood from many addresses never takes the stream
      // slots TCP visitors need on it (SPEC.md §2.5; the session counts its datagram streams).
      if (!host.session.hasDatagramRoom) {
        full = true;
        continue;
      }
      flow ??= new DatagramFlow(key, this.flows, (ds) => endpoint.sendMany(ds, port, address), this.counters, () => {});
      const stream = host.session.openStream(flow, {
        service: this.route.service,
        visitorAddress: address,
        visitorPort: port,
        routeAddress: this.routeAddress,
        routePort: this.routeAddress !== "" ? this.port : 0,
        datagram: true,
      });
      if (stream === null) continue;
      stream.label = this.label;
      flow.bind(stream);
      this.flows.add(flow);
      this.stats.flows.set(stream, flow);
      this.stats.streamOpened(this.label);
      return flow;
    }
    if (full) {
      this.counters.dropped("flow_limit"); // every connection tried carries its share of UDP flows already
      return null;
    }
    this.counters.dropped("no_agent");
    this.stats.visitorRefused(this.label);
    log.debug("UDP datagram dropped: no agent connection available", { route: this.label, visitor: address, code: logCode("ERR_NO_HOST") });
    return null;
  }
}
