/**
 * Agent side of the handshake (SPEC.md §1): the ConnectionInitInfo this agent sends, and the owner of its socket from
 * connect until the server's ConnectionInitResponse. The decoder, deadline and settle are HandshakeCore's
 * (mux/handshake-core.ts); what the response means is the connection slot's (connection.ts).
 */
import type { AgentConfig } from "../config.ts";
import { encodeHandshake, type ConnectionInitResponse } from "../protocol/handshake.ts";
import { HandshakeFlag, STREAM_PROTOCOL_VERSION } from "../protocol/constants.ts";
import { makeCredential } from "../auth/credential.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import { HandshakeCore, type FrameOf } from "../mux/handshake-core.ts";
import { openingWindow } from "../mux/session-options.ts";
import type { TunnelError } from "../errors.ts";

/** Who this InitInfo speaks for: the connection's role and slot, and the agent process (instance). */
export interface HelloOf {
  role: "data" | "aside";
  slot: number;
  instance: string;
}

/**
 * The encoded ConnectionInitInfo of one connection: MOSN's six keys, our hello in `extra.backchannel` (§1.1); an
 * hmac credential is bound to the connection by `binding` (transport/tls.ts channelBinding, SPEC.md §1.7).
 */
export function encodeInitInfo(config: AgentConfig, who: HelloOf, binding: string): Uint8Array {
  return encodeHandshake({
    flag: HandshakeFlag.INIT_INFO,
    body: {
      cluster_name: config.cluster,
      weight: config.weight,
      host_name: config.hostname,
      credential_policy: config.credentialPolicy,
      credential: makeCredential(config.credentialPolicy, config.credential, config.cluster, config.hostname, binding),
      extra: {
        backchannel: {
          version: STREAM_PROTOCOL_VERSION,
          role: who.role,
          slot: who.slot,
          instance: who.instance,
          window: openingWindow(config.streamWindowBytes), // grown per stream after its ACK (SPEC.md §2.2)
          max_frame: config.maxFrameBytes,
        },
      },
    },
  });
}

/**
 * The encoded ConnectionInitInfo of a TUNNEL_PROTOCOL=mosn connection (SPEC.md §7): MOSN's six keys with `extra`
 * null, so a MOSN tunnel server (or ours with TUNNEL_MOSN_AGENTS) takes it as a plain MOSN agent. Policy `none` is
 * sent as MOSN's empty policy (no authentication).
 */
export function encodeMosnInitInfo(config: AgentConfig, binding: string): Uint8Array {
  const policy = config.credentialPolicy === "none" ? "" : config.credentialPolicy;
  return encodeHandshake({
    flag: HandshakeFlag.INIT_INFO,
    body: {
      cluster_name: config.cluster,
      weight: config.weight,
      host_name: config.hostname,
      credential_policy: policy,
      credential: makeCredential(config.credentialPolicy, config.credential, config.cluster, config.hostname, binding),
      extra: null,
    },
  });
}

/** What the handshake reports to its connection slot (exactly one of the two, once). */
export interface HandshakeOutcome {
  /** The server answered (any status); `rest` is what followed the response in the same read. */
  handshakeDone(socket: TunnelSocket, response: ConnectionInitResponse, rest: Uint8Array): void;
  /** No answer: closed, timed out, or not a handshake frame. The socket is closed already. */
  handshakeFailed(error: TunnelError): void;
}

/** Owns the agent's socket from connect until the ConnectionInitResponse. */
export class AgentHandshake extends HandshakeCore<typeof HandshakeFlag.INIT_RESPONSE> {
  private socket: TunnelSocket | null = null;

  constructor(private readonly outcome: HandshakeOutcome) {
    super(HandshakeFlag.INIT_RESPONSE);
  }

  /** The socket is connected and the InitInfo is on its way: the response must arrive within `timeoutMs`. */
  begin(socket: TunnelSocket, timeoutMs: number): void {
    this.socket = socket;
    this.arm(timeoutMs);
  }

  /** Gives up on this handshake (closes the socket; the slot retries). */
  abort(error: TunnelError): void {
    this.fail(error, "lost");
  }

  protected received(message: FrameOf<typeof HandshakeFlag.INIT_RESPONSE>, rest: Uint8Array): void {
    this.outcome.handshakeDone(this.socket as TunnelSocket, message.body, rest);
  }

  protected failed(error: TunnelError): void {
    this.socket?.terminate();
    this.outcome.handshakeFailed(error);
  }
}
