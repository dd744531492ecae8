/**
 * Server side of the handshake: one ConnectionInitInfo in, one ConnectionInitResponse out, under a deadline that
 * covers everything from TCP accept (the TLS handshake included) to the response. Statuses follow MOSN (SPEC.md
 * §1.2): unknown policy or not the cluster's policy → 3, unknown cluster → 4, credential that does not verify → 2,
 * then ours (16, 18), else 1. With TUNNEL_TLS_CLIENT_CA every connection must present a client certificate that
 * verifies against it (`socket.authorized`, checked here once TLS completes) or it is refused with 2. The decoder,
 * deadline and settle are HandshakeCore's (mux/handshake-core.ts); the gate before it is gate.ts. With
 * TUNNEL_MOSN_AGENTS=on an InitInfo without `extra.backchannel` is a plain MOSN agent's (a raw connection, SPEC.md
 * §7; its empty policy reads as `none`), and a GracefulClose may come as the first frame instead.
 */
import { encodeHandshake, readBackchannelHello, type BackchannelHello, type ConnectionInitInfo, type GracefulClose } from "../protocol/handshake.ts";
import { HandshakeFlag, HandshakeStatus, STREAM_PROTOCOL_VERSION } from "../protocol/constants.ts";
import { verifyCredential, type ReplayGuard } from "../auth/credential.ts";
import { TunnelError, type ErrorCode } from "../errors.ts";
import type { ClusterConfig, ServerConfig } from "../config.ts";
import type { TunnelSocket } from "../transport/ws-socket.ts";
import { channelBinding } from "../transport/tls.ts";
import { HandshakeCore, type FrameOf, type HandshakeFailure } from "../mux/handshake-core.ts";
import { AUTH_FAILURE_STATUSES, type AuthPenalties } from "./gate.ts";
import type { AcceptedRaw } from "./mosn-agents.ts";

const KNOWN_POLICIES = new Set(["token", "hmac-sha256", "mtls", "none"]);

/** What a successful handshake yields. */
export interface AcceptedHandshake {
  info: ConnectionInitInfo;
  hello: BackchannelHello;
  cluster: ClusterConfig;
  /** Bytes received after the InitInfo frame (already stream frames). */
  rest: Uint8Array;
}

/** What the handshake needs from the server. */
export interface HandshakeContext {
  readonly config: ServerConfig;
  readonly clusters: ReadonlyMap<string, ClusterConfig>;
  readonly replay: ReplayGuard;
  /** Failed authentications are reported here (optional: no penalties without it). */
  readonly penalties?: AuthPenalties;
  /** Called once with the outcome; on success the callee writes the response and takes the socket over. */
  onAccepted(socket: TunnelSocket, accepted: AcceptedHandshake): void;
  /** As onAccepted, for a plain MOSN agent's connection (TUNNEL_MOSN_AGENTS=on only). */
  onRawAccepted(socket: TunnelSocket, accepted: AcceptedRaw): void;
  /** A GracefulClose came as the first frame (TUNNEL_MOSN_AGENTS=on only); the callee takes the socket over. */
  onGracefulClose(socket: TunnelSocket, body: GracefulClose): void;
  /** Called once on failure, after the response (if any) was written. */
  onRefused(socket: TunnelSocket, status: number | null, error: TunnelError): void;
  /** Called once when the handshake phase ends, either way (releases pending-handshake slots). */
  onSettled(socket: TunnelSocket): void;
}

/** Identities of a TLS client certificate: its CN and DNS names. */
export function certificateIdentities(socket: TunnelSocket): string[] {
  const cert = socket.getPeerCertificate?.() as { subject?: { CN?: string }; subjectaltname?: string } | undefined;
  if (!cert || !socket.authorized) return [];
  const ids: string[] = [];
  if (cert.subject?.CN) ids.push(cert.subject.CN);
  for (const part of (cert.subjectaltname ?? "").split(",")) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m?.[1]) ids.push(m[1].trim());
  }
  return ids;
}

/**
 * The outcome of {@link decideStatus}: success with the cluster and hello (null: a plain MOSN agent, admitted as a
 * raw connection), or a refusal with its reason.
 */
export type Decision =
  | { status: typeof HandshakeStatus.SUCCESS; cluster: ClusterConfig; hello: BackchannelHello | null }
  | { status: number; error: TunnelError };

function refusal(status: number, code: ErrorCode, why: string): Decision {
  return { status, error: new TunnelError(code, `handshake refused with status ${status}: ${why}`) };
}

/**
 * Decides the status for a decoded InitInfo (SPEC.md §1.2 order). `mosnAgents`: an InitInfo without
 * `extra.backchannel` is a plain MOSN agent's (SPEC.md §7), whose empty policy means `none`. Pure apart from the
 * replay guard.
 */
export function decideStatus(
  info: ConnectionInitInfo,
  ctx: Pick<HandshakeContext, "clusters" | "replay"> & { mosnAgents?: boolean },
  peer: { identities(): string[]; binding(): string },
): Decision {
  const hello = readBackchannelHello(info);
  const raw = hello === null && ctx.mosnAgents === true;
  const policy = raw && info.credential_policy === "" ? "none" : info.credential_policy;
  if (!KNOWN_POLICIES.has(policy)) return refusal(HandshakeStatus.VALIDATOR_NOT_FOUND, "ERR_AUTH", "unknown credential policy");
  const cluster = ctx.clusters.get(info.cluster_name);
  if (cluster === undefined) return refusal(HandshakeStatus.CLUSTER_NOT_EXIST, "ERR_AUTH", "unknown cluster");
  if (cluster.policy !== policy) return refusal(HandshakeStatus.VALIDATOR_NOT_FOUND, "ERR_AUTH", "not the cluster's policy");
  let ok: boolean;
  switch (cluster.policy) {
    case "none":
      ok = true;
      break;
    case "mtls": {
      // The certificate must prove an identity the cluster allows, and the name the agent registers under (which
      // its aside speaks for): a certificate of edge-1 cannot join as edge-2.
      const ids = peer.identities();
      const allowed = cluster.allowedIdentities.length > 0 ? cluster.allowedIdentities : [cluster.name];
      // A MOSN agent sends no host name: it is then named by its address (raw connections only).
      ok = ids.some((id) => allowed.includes(id)) && (ids.includes(info.host_name) || (raw && info.host_name === ""));
      break;
    }
    default:
      ok = verifyCredential(cluster.policy, cluster.secret ?? "", info.credential, cluster.name, info.host_name, ctx.replay, peer.binding());
  }
  if (!ok) return refusal(HandshakeStatus.AUTH_FAILED, "ERR_AUTH", "credential does not verify");
  if (raw) return { status: HandshakeStatus.SUCCESS, cluster, hello: null };
  if (hello instanceof TunnelError) return { status: HandshakeStatus.MALFORMED, error: hello };
  if (hello === null) return refusal(HandshakeStatus.UNSUPPORTED_VERSION, "ERR_UNSUPPORTED_VERSION", "no extra.backchannel");
  if (hello.version !== STREAM_PROTOCOL_VERSION) return refusal(HandshakeStatus.UNSUPPORTED_VERSION, "ERR_UNSUPPORTED_VERSION", `stream protocol version ${hello.version}`);
  return { status: HandshakeStatus.SUCCESS, cluster, hello };
}

type ServerFlag = typeof HandshakeFlag.INIT_INFO | typeof HandshakeFlag.GRACEFUL_CLOSE;

/** Owns a freshly accepted agent socket until the handshake succeeds or fails. */
export class PendingHandshake extends HandshakeCore<ServerFlag> {
  /** TLS: the TLS handshake has not completed (and verified, under TUNNEL_TLS_CLIENT_CA) yet. */
  private tlsPending: boolean;

  /**
   * `opts` for a WebSocket connection (server/agent-listeners.ts): the time left of the deadline that started at TCP
   * accept, and `tlsDone` (its TLS, if any, finished before the upgrade: the client certificate is checked now).
   */
  constructor(
    private readonly socket: TunnelSocket,
    private readonly ctx: HandshakeContext,
    opts: { timeoutMs?: number; tlsDone?: boolean } = {},
  ) {
    // MOSN agents (raw connections, GracefulClose) speak plain TCP or TLS only, never over a WebSocket.
    const mosn = ctx.config.mosnAgents && socket.transport !== "websocket";
    const flags: ServerFlag[] = mosn ? [HandshakeFlag.INIT_INFO, HandshakeFlag.GRACEFUL_CLOSE] : [HandshakeFlag.INIT_INFO];
    super(flags, ctx.config.handshakeMaxBytes);
    this.tlsPending = ctx.config.tls && opts.tlsDone !== true;
    // Started at TCP accept (TLS listeners fire open before the TLS handshake): one deadline for TLS + InitInfo.
    this.arm(opts.timeoutMs ?? ctx.config.handshakeTimeoutMs);
    if (opts.tlsDone === true) queueMicrotask(() => this.onHandshake(true, null));
  }

  /** TLS listener: the TLS handshake finished. Under TUNNEL_TLS_CLIENT_CA the client certificate must verify. */
  onHandshake(ok: boolean, error: Error | null): void {
    if (this.state === "settled") return;
    if (!ok) return this.fail(new TunnelError("ERR_TLS", `TLS handshake failed: ${tlsReason(error)}`), "lost");
    if (this.ctx.config.tlsClientCa !== null && !this.socket.authorized) {
      // No certificate, or one that does not chain to TUNNEL_TLS_CLIENT_CA: refused like a bad credential.
      return this.refuse(HandshakeStatus.AUTH_FAILED, new TunnelError("ERR_TLS", `client certificate refused: ${tlsReason(error)}`), true);
    }
    this.tlsPending = false;
  }

  protected override mayRead(): boolean {
    if (!this.tlsPending) return true;
    // Bun delivers data only after the handshake event; never act on bytes before TLS (and the client certificate)
    // were checked.
    this.fail(new TunnelError("ERR_TLS", "data before the TLS handshake completed"), "lost");
    return false;
  }

  protected override settled(): void {
    this.ctx.onSettled(this.socket);
  }

  protected received(message: FrameOf<ServerFlag>, rest: Uint8Array): void {
    if (message.flag === HandshakeFlag.GRACEFUL_CLOSE) return this.ctx.onGracefulClose(this.socket, message.body);
    const info = message.body;
    const mosnAgents = this.ctx.config.mosnAgents && this.socket.transport !== "websocket";
    const d = decideStatus(info, { ...this.ctx, mosnAgents }, {
      identities: () => certificateIdentities(this.socket),
      binding: () => channelBinding(this.socket, this.ctx.config.tls),
      // (a WebSocket connection's binding is `websocket` whatever its TLS: channelBinding)
    });
    if ("error" in d) return this.respondRefusal(d.status, d.error, AUTH_FAILURE_STATUSES.has(d.status));
    if (d.hello === null) return this.ctx.onRawAccepted(this.socket, { info, cluster: d.cluster, rest });
    this.ctx.onAccepted(this.socket, { info, hello: d.hello, cluster: d.cluster, rest });
  }

  protected failed(error: TunnelError, how: HandshakeFailure): void {
    if (how === "malformed") return this.respondRefusal(HandshakeStatus.MALFORMED, error, false);
    if (how === "lost") this.socket.terminate();
    this.ctx.onRefused(this.socket, null, error);
  }

  /** Refuses with a status (settling first). */
  private refuse(status: number, error: TunnelError, authFailure: boolean): void {
    if (this.state === "settled") return;
    this.settle();
    this.respondRefusal(status, error, authFailure);
  }

  /** Writes the refusal status, closes, and reports it (already settled). */
  private respondRefusal(status: number, error: TunnelError, authFailure: boolean): void {
    if (authFailure) this.ctx.penalties?.failure(this.socket.remoteAddress);
    this.socket.write(encodeHandshake({ flag: HandshakeFlag.INIT_RESPONSE, body: { status } }));
    this.socket.end();
    this.ctx.onRefused(this.socket, status, error);
  }
}

/** `CODE: message` of a TLS error, for logs (never contains key material). */
function tlsReason(error: Error | null): string {
  if (error === null) return "not verified";
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? `${code}: ${error.message}` : error.message;
}
