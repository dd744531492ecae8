/**
 * Plain MOSN agents (TUNNEL_MOSN_AGENTS=on, SPEC.md §7): a handshaken connection without `extra.backchannel` is
 * answered with MOSN's own success response and joins its cluster as a raw host (raw-link.ts); a GracefulClose
 * frame, which a MOSN agent sends on a connection of its own at shutdown, retires the raw hosts it lists, but only
 * those of its own source address and cluster (MOSN's server removes whatever it is told, mosn-tunnel.md §6.5).
 */
import { randomBytes } from "node:crypto";
import { isIPv4 } from "node:net";
import { encodeHandshake, type ConnectionInitInfo, type GracefulClose } from "../protocol/handshake.ts";
import { HandshakeFlag, HandshakeStatus } from "../protocol/constants.ts";
import type { ClusterConfig } from "../config.ts";
import type { NetSocket } from "../transport/tcp.ts";
import { logger } from "../log.ts";
import { RawLink, type RawLinkEvents } from "./raw-link.ts";
import type { Registry } from "./registry.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("server");

/** A plain MOSN agent's accepted handshake. */
export interface AcceptedRaw {
  info: ConnectionInitInfo;
  cluster: ClusterConfig;
  /** Bytes that came behind the InitInfo frame. */
  rest: Uint8Array;
}

/**
 * `ip:port` as Go's net.JoinHostPort writes a TCP address (IPv6 in brackets), with an IPv4-mapped IPv6 address
 * written as IPv4 (a dual-stack listener reports those for IPv4 agents) and IPv6 in lower case.
 */
export function addressKey(ip: string, port: number): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  const host = v4 ?? ip.toLowerCase();
  return isIPv4(host) ? `${host}:${port}` : `[${host}]:${port}`;
}

/** The IP of an address key (`1.2.3.4:5` → `1.2.3.4`, `[::1]:5` → `::1`), or null if it is not one. */
function ipOfKey(key: string): string | null {
  const colon = key.lastIndexOf(":");
  if (colon <= 0) return null;
  const host = key.slice(0, colon);
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Admits plain MOSN agents' connections and handles their GracefulClose. One per server. */
export class MosnAgents {
  private readonly prefix: string;

  constructor(
    private readonly registry: Registry,
    private readonly stats: ServerStats,
    private readonly accessLog: boolean,
    idPrefix: string,
  ) {
    this.prefix = `${idPrefix}-raw`;
  }

  /** Writes MOSN's success response (`{"status":1}`, nothing more) and registers the connection as a raw host. */
  admit(socket: NetSocket, a: AcceptedRaw): void {
    const response = encodeHandshake({ flag: HandshakeFlag.INIT_RESPONSE, body: { status: HandshakeStatus.SUCCESS } });
    if (socket.write(response) !== response.byteLength) {
      socket.terminate();
      return;
    }
    const id = {
      connectionId: `${this.prefix}-${randomBytes(12).toString("hex")}`,
      cluster: a.cluster.name,
      hostName: a.info.host_name !== "" ? a.info.host_name : (ipOfKey(addressKey(socket.remoteAddress, 0)) ?? socket.remoteAddress),
      weight: Math.max(1, a.info.weight),
    };
    const link = new RawLink(socket, id, this.events());
    socket.data.owner = link;
    this.registry.addRaw(link);
    this.stats.rawJoined(link);
    log.info("MOSN agent connection joined", { connectionId: id.connectionId, cluster: id.cluster, hostName: id.hostName, weight: id.weight, remote: addressKey(link.remoteAddress, link.remotePort) });
    // Bytes behind the InitInfo: kept for the first visitor, within the idle bound (a copy: `rest` views a read).
    if (a.rest.byteLength > 0) link.onData(a.rest.slice());
  }

  /**
   * A GracefulClose: retires the raw hosts of `body.cluster_name` at the listed addresses whose remote IP is the
   * sender's; every other address is ignored (and counted in the log). The connection is then closed (MOSN's
   * agent sends nothing else on it).
   */
  gracefulClose(socket: NetSocket, body: GracefulClose): void {
    const senderIp = ipOfKey(addressKey(socket.remoteAddress, 0));
    const wanted = new Set(body.addresses);
    let retired = 0;
    for (const link of [...this.registry.rawHosts()]) {
      if (link.cluster !== body.cluster_name) continue;
      const key = addressKey(link.remoteAddress, link.remotePort);
      if (!wanted.has(key) || ipOfKey(key) !== senderIp) continue;
      wanted.delete(key);
      link.retire();
      retired++;
    }
    const fields = { remote: socket.remoteAddress, cluster: body.cluster_name, listed: body.addresses.length, retired };
    if (wanted.size > 0) log.warn("GracefulClose named connections that are not the sender's (or are gone): ignored", { ...fields, ignored: wanted.size });
    else log.info("MOSN agent GracefulClose", fields);
    socket.end();
  }

  private events(): RawLinkEvents {
    return {
      carried: (_link, label) => this.stats.streamOpened(label),
      visitorDone: (link, label, up, down, how) => this.stats.rawVisitorEnded(link, label, up, down, how, this.accessLog),
      gone: (link, reason) => {
        this.registry.removeRaw(link);
        this.stats.rawLeft(link);
        log.info("MOSN agent connection closed", { connectionId: link.connectionId, cluster: link.cluster, hostName: link.hostName, reason });
      },
    };
  }
}
