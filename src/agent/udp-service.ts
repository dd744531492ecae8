/**
 * The agent's end of a UDP flow: a datagram stream (SPEC.md §2.5) for a `/udp` service gets its own UDP socket
 * connected to the service, so the service's replies come back to this flow only. The stream is acknowledged once
 * the socket is open; datagrams the server sent meanwhile (at most the 64 KiB opening window) are then delivered.
 */
import type { ServiceConfig } from "../config.ts";
import { WireCode } from "../protocol/constants.ts";
import type { Stream } from "../mux/stream.ts";
import { DatagramFlow, type FlowCounters, type FlowTable } from "../mux/datagram-flow.ts";
import { connectUdp, type UdpConnection } from "../transport/udp.ts";
import { logger } from "../log.ts";

const log = logger("service");

/** Flow keys on the agent: unique in the process (stream ids are unique per connection only). */
let nextFlowKey = 1;

/** Opens the flow's socket toward `service` and attaches it to `stream` (or resets the stream if it cannot). */
export function serveUdp(stream: Stream, service: ServiceConfig, flows: FlowTable, counters: FlowCounters): void {
  let socket: UdpConnection | null = null;
  const flow = new DatagramFlow(String(nextFlowKey++), flows, (ds) => socket?.sendMany(ds) ?? 0, counters, () => socket?.close());
  connectUdp({
    host: service.host,
    port: service.port,
    onDatagram: (data, truncated) => flow.receive(data, truncated),
    // ECONNREFUSED from an earlier send (nothing listens on the service port): the datagram was lost, the flow goes on.
    onError: (e) => log.debug("UDP service socket error", { service: service.name, streamId: stream.id, error: e.message }),
  }).then(
    (s) => {
      if (stream.end !== null) {
        s.close();
        return;
      }
      socket = s;
      flows.add(flow);
      flow.bind(stream);
      stream.attach(flow);
      stream.acknowledge();
    },
    (e: unknown) => {
      log.debug("UDP service socket failed", { service: service.name, streamId: stream.id, error: (e as Error).message });
      stream.reset(WireCode.CONNECT_REFUSED);
    },
  );
}
