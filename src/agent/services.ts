/**
 * The agent's allowlist: a stream names a service, and only services in TUNNEL_SERVICES are ever dialled.
 * Unknown names (including anything that looks like an address) are reset with UNKNOWN_SERVICE, nothing dialled.
 */
import type { AgentConfig, ServiceConfig } from "../config.ts";
import { WireCode } from "../protocol/constants.ts";
import type { Stream } from "../mux/stream.ts";
import { connect } from "../transport/tcp.ts";
import { isTunnelError, logCode } from "../errors.ts";
import { proxyHeader } from "./proxy-protocol.ts";
import { logger } from "../log.ts";
import { FlowTable } from "../mux/datagram-flow.ts";
import { UdpStats } from "../stats/udp.ts";
import { serveUdp } from "./udp-service.ts";

const log = logger("service");

/** Dials allowlisted targets for streams opened by servers. */
export class Services {
  private readonly byName: ReadonlyMap<string, ServiceConfig>;
  /** Streams refused because the service is not in the allowlist. */
  unknownServiceCount = 0;
  dialFailures = 0;
  /** Streams refused because the service is of the other protocol (a UDP flow for a TCP service or the reverse). */
  protocolMismatchCount = 0;
  /** The open UDP flows (idle timeout; no cap of their own: streams per connection bound them). */
  readonly flows: FlowTable;
  /** UDP datagrams and drops by service. */
  readonly udp = new UdpStats(false);

  constructor(private readonly config: AgentConfig) {
    this.byName = new Map(config.services.map((s) => [s.name, s]));
    this.flows = new FlowTable(config.udpIdleTimeoutMs, Infinity);
  }

  /** Ends every UDP flow and stops the idle timer. */
  stop(): void {
    this.flows.close(WireCode.SHUTTING_DOWN);
  }

  /** Handles an OPEN: dial the target and attach it, or reset the stream with a code. */
  serve(stream: Stream): void {
    const service = this.byName.get(stream.open.service);
    if (service === undefined) {
      this.unknownServiceCount++;
      log.warn("stream for a service not in TUNNEL_SERVICES refused", { streamId: stream.id, service: stream.open.service, code: logCode("ERR_UNKNOWN_SERVICE") });
      stream.reset(WireCode.UNKNOWN_SERVICE);
      return;
    }
    stream.label = service.name;
    const datagram = stream.open.datagram === true;
    if (datagram !== (service.protocol === "udp")) {
      this.protocolMismatchCount++;
      log.debug("stream for a service of the other protocol refused", { streamId: stream.id, service: service.name, udp: datagram, code: logCode("ERR_SERVICE_PROTOCOL") });
      stream.reset(WireCode.PROTOCOL_MISMATCH);
      return;
    }
    if (datagram) return serveUdp(stream, service, this.flows, this.udp.counters(service.name));
    connect({ host: service.host, port: service.port, timeoutMs: this.config.connectTimeoutMs, owner: stream }).then(
      (socket) => {
        if (stream.end !== null) {
          socket.terminate();
          return;
        }
        if (service.proxyProtocol !== null) {
          // The header goes first, before any stream data (attach flushes what the server sent meanwhile). A fresh
          // socket takes these ≤ 107 bytes whole; if it did not, the target would see a torn header: reset instead.
          const header = proxyHeader(service.proxyProtocol, stream.open);
          if (socket.write(header) !== header.byteLength) {
            stream.reset(WireCode.TARGET_ERROR);
            socket.terminate();
            return;
          }
        }
        stream.attach(socket);
        stream.acknowledge();
      },
      (e: unknown) => {
        this.dialFailures++;
        const code = isTunnelError(e, "ERR_CONNECT_TIMEOUT") ? WireCode.CONNECT_TIMEOUT : WireCode.CONNECT_REFUSED;
        log.debug("target dial failed", { service: service.name, streamId: stream.id, error: (e as Error).message });
        stream.reset(code);
      },
    );
  }
}
