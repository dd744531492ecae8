/**
 * What happens to an agent connection after a successful handshake: the response with its connection id, a
 * session, and then either a host of its cluster (data) or the agent's aside (control) connection. Drain: a data
 * connection that the agent asked to drain (DRAIN over its aside, or GOAWAY on the connection itself) takes no new
 * streams; once its last stream ends the server acknowledges with DRAINED on the aside and closes it.
 */
import { randomBytes } from "node:crypto";
import type { ServerConfig } from "../config.ts";
import { encodeHandshake } from "../protocol/handshake.ts";
import { HandshakeFlag, HandshakeStatus, STREAM_PROTOCOL_VERSION, WireCode } from "../protocol/constants.ts";
import type { ControlMessage } from "../protocol/control.ts";
import { Session } from "../mux/session.ts";
import { sessionOptions } from "../mux/session-options.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import { logger } from "../log.ts";
import type { AcceptedHandshake } from "./handshake.ts";
import type { Registry, Host } from "./registry.ts";
import type { ServerStats } from "./stats.ts";

const log = logger("server");

/** Identity of an agent process within the server: cluster, host name and instance. */
function agentKey(cluster: string, hostName: string, instance: string): string {
  return `${cluster}\u0000${hostName}\u0000${instance}`;
}

/** Admits handshaken connections and runs drains. One per server. */
export class Admission {
  /** Aside sessions by agent identity. */
  private readonly asides = new Map<string, Session>();

  constructor(
    private readonly config: ServerConfig,
    private readonly registry: Registry,
    private readonly stats: ServerStats,
    private readonly idPrefix: string,
  ) {}

  /** Writes the success response and turns the socket into a session. */
  admit(socket: TunnelSocket, a: AcceptedHandshake): void {
    const { config } = this;
    // 96 random bits: an agent cannot guess another's connection ids (only its own are told to it).
    const connectionId = `${this.idPrefix}-${randomBytes(12).toString("hex")}`;
    const response = encodeHandshake({
      flag: HandshakeFlag.INIT_RESPONSE,
      body: {
        status: HandshakeStatus.SUCCESS,
        connection_id: connectionId,
        backchannel: { version: STREAM_PROTOCOL_VERSION, window: config.streamWindowBytes, max_frame: config.maxFrameBytes },
      },
    });
    if (socket.write(response) !== response.byteLength) {
      socket.terminate();
      return;
    }
    const cluster = a.cluster.name;
    const hostName = a.info.host_name;
    const aside = a.hello.role === "aside";
    const agent: AsideAgent = { cluster, hostName, instance: a.hello.instance, warned: false };
    let host: Host | null = null;
    const session: Session = new Session(
      socket,
      sessionOptions("server", a.hello.role, config, a.hello),
      {
        onStreamEnd: (stream, code) => {
          this.stats.streamEnded(stream, code, host, config.accessLog);
          if (host !== null && session.draining && session.activeStreams === 0) this.finishDrain(host);
        },
        onAck: (stream) => this.stats.streamAcked(stream),
        onRtt: (ms) => {
          if (host !== null) this.stats.rtt(host, ms);
        },
        onGoAway: () => {
          // The agent asked to drain this connection (or is going away).
          if (host !== null) this.drain(host);
        },
        onControl: (msg) => this.handleControl(agent, msg),
        onUnready: () => {
          if (host !== null) this.registry.unready(host);
        },
        onClose: (error) => {
          if (host !== null) {
            this.registry.remove(host);
            this.stats.hostLeft(host);
          }
          const key = agentKey(cluster, hostName, a.hello.instance);
          if (aside && this.asides.get(key) === session) this.asides.delete(key);
          log.info("agent connection closed", { connectionId, cluster, hostName, role: a.hello.role, reason: error?.message });
        },
      },
    );
    socket.data.owner = session;
    if (aside) {
      const key = agentKey(cluster, hostName, a.hello.instance);
      const old = this.asides.get(key);
      this.asides.set(key, session);
      old?.close();
      log.info("agent aside connection joined", { connectionId, cluster, hostName });
    } else {
      host = this.joinHost(a, connectionId, socket.remoteAddress, session);
    }
    if (a.rest.byteLength > 0) session.onData(a.rest);
  }

  /** Registers a data connection as a host of its cluster; drains the connections it replaces. */
  private joinHost(a: AcceptedHandshake, connectionId: string, remoteAddress: string, session: Session): Host {
    const host: Host = {
      connectionId,
      cluster: a.cluster.name,
      hostName: a.info.host_name,
      weight: Math.max(1, a.info.weight),
      slot: a.hello.slot,
      instance: a.hello.instance,
      remoteAddress,
      connectedAt: Date.now(),
      session,
    };
    const { cluster, hostName } = host;
    // A live peer stays silent at most one heartbeat interval; twice that means it is gone.
    const { replaced, shared } = this.registry.add(host, 2 * this.config.heartbeatIntervalMs);
    this.stats.hostJoined(host);
    for (const old of replaced) {
      log.info("agent connection replaced", { old: old.connectionId, new: connectionId, hostName });
      this.drain(old);
    }
    if (shared.length > 0) {
      log.warn("two live agents share a host name; give each its own TUNNEL_HOSTNAME", { cluster, hostName, slot: host.slot });
    }
    log.info("agent connection joined", { connectionId, cluster, hostName, weight: host.weight, slot: host.slot });
    return host;
  }

  /** Stops routing to a host; it closes (with DRAINED on the aside) once its streams are done. */
  drain(host: Host): void {
    host.session.goAway(WireCode.NO_ERROR);
    if (host.session.activeStreams === 0) this.finishDrain(host);
  }

  private finishDrain(host: Host): void {
    if (host.session.closed) return;
    this.asides.get(agentKey(host.cluster, host.hostName, host.instance))?.sendControl({ type: "drained", connection_id: host.connectionId });
    host.session.close();
  }

  /** A CONTROL message on an aside connection: it acts only on connections of the agent instance that sent it. */
  private handleControl(agent: AsideAgent, msg: ControlMessage): void {
    const { cluster, hostName, instance } = agent;
    switch (msg.type) {
      case "drain":
        for (const id of msg.connection_ids) {
          const host = this.registry.byId.get(id);
          if (host === undefined) continue; // already gone (its GOAWAY or close came first)
          // MOSN's GracefulClose could evict anyone (mosn-tunnel.md §6.5); an aside speaks only for its own instance.
          if (host.cluster !== cluster || host.hostName !== hostName || host.instance !== instance) {
            this.foreign(agent, "DRAIN");
            continue;
          }
          this.drain(host);
        }
        return;
      case "weight":
        if (!this.registry.hasInstance(cluster, hostName, instance)) return this.foreign(agent, "WEIGHT");
        this.registry.setWeight(cluster, hostName, msg.weight);
        log.info("agent weight changed", { cluster, hostName, weight: msg.weight });
        return;
      default:
        log.warn("unexpected CONTROL from an agent", { cluster, hostName, type: msg.type });
    }
  }

  /** A control message for connections that are not the sender's: ignored, warned once per aside connection. */
  private foreign(agent: AsideAgent, what: string): void {
    if (agent.warned) return;
    agent.warned = true;
    log.warn(`${what} for connections that are not this agent instance's ignored`, { cluster: agent.cluster, hostName: agent.hostName, instance: agent.instance });
  }
}

/** The agent an aside connection speaks for, and whether it was warned about foreign control messages. */
interface AsideAgent {
  readonly cluster: string;
  readonly hostName: string;
  readonly instance: string;
  warned: boolean;
}
