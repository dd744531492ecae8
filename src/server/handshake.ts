/**
 * Server side of the handshake: one ConnectionInitInfo in, one ConnectionInitResponse out, under a deadline that
 * covers everything from accept to the response. Statuses follow MOSN (SPEC.md §1.2): unknown policy or not the
 * cluster's policy → 3, unknown cluster → 4, credential that does not verify → 2, then ours (16, 18), else 1.
 */
import { HandshakeDecoder, encodeHandshake, readBackchannelHello, type BackchannelHello, type ConnectionInitInfo } from "../protocol/handshake.ts";
import { HandshakeStatus, STREAM_PROTOCOL_VERSION } from "../protocol/constants.ts";
import { verifyCredential, type ReplayGuard } from "../auth/credential.ts";
import { TunnelError } from "../errors.ts";
import type { ClusterConfig, ServerConfig } from "../config.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";

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
  /** Called once with the outcome; on success the callee writes the response and takes the socket over. */
  onAccepted(socket: NetSocket, accepted: AcceptedHandshake): void;
  /** Called once on failure, after the response (if any) was written. */
  onRefused(socket: NetSocket, status: number | null, error: TunnelError): void;
  /** Called once when the handshake phase ends, either way (releases pending-handshake slots). */
  onSettled(socket: NetSocket): void;
}

/** Identities of a TLS client certificate: its CN and DNS names. */
export function certificateIdentities(socket: NetSocket): string[] {
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

/** Decides the status for a decoded InitInfo. Pure apart from the replay guard. */
export function decideStatus(
  info: ConnectionInitInfo,
  ctx: Pick<HandshakeContext, "clusters" | "replay">,
  peerIdentities: () => string[],
): { status: number; cluster?: ClusterConfig; hello?: BackchannelHello } {
  if (!KNOWN_POLICIES.has(info.credential_policy)) return { status: HandshakeStatus.VALIDATOR_NOT_FOUND };
  const cluster = ctx.clusters.get(info.cluster_name);
  if (cluster === undefined) return { status: HandshakeStatus.CLUSTER_NOT_EXIST };
  if (cluster.policy !== info.credential_policy) return { status: HandshakeStatus.VALIDATOR_NOT_FOUND };
  let ok: boolean;
  switch (cluster.policy) {
    case "none":
      ok = true;
      break;
    case "mtls": {
      const ids = peerIdentities();
      const allowed = cluster.allowedIdentities.length > 0 ? cluster.allowedIdentities : [cluster.name];
      ok = ids.some((id) => allowed.includes(id));
      break;
    }
    default:
      ok = verifyCredential(cluster.policy, cluster.secret ?? "", info.credential, cluster.name, info.host_name, ctx.replay);
  }
  if (!ok) return { status: HandshakeStatus.AUTH_FAILED };
  let hello: BackchannelHello | null;
  try {
    hello = readBackchannelHello(info);
  } catch {
    return { status: HandshakeStatus.MALFORMED };
  }
  if (hello === null || hello.version !== STREAM_PROTOCOL_VERSION) return { status: HandshakeStatus.UNSUPPORTED_VERSION };
  return { status: HandshakeStatus.SUCCESS, cluster, hello };
}

/** Owns a freshly accepted agent socket until the handshake succeeds or fails. */
export class PendingHandshake implements SocketOwner {
  private readonly decoder: HandshakeDecoder;
  private readonly timer: ReturnType<typeof setTimeout>;
  private settled = false;

  constructor(
    private readonly socket: NetSocket,
    private readonly ctx: HandshakeContext,
  ) {
    this.decoder = new HandshakeDecoder({ maxBodyBytes: ctx.config.handshakeMaxBytes, accept: [1] });
    this.timer = setTimeout(() => this.fail(null, new TunnelError("ERR_HANDSHAKE_TIMEOUT")), ctx.config.handshakeTimeoutMs);
  }

  onData(chunk: Uint8Array): void {
    if (this.settled) return;
    const r = this.decoder.push(chunk);
    if (r.kind === "more") return;
    if (r.kind === "error") {
      this.fail(HandshakeStatus.MALFORMED, r.error);
      return;
    }
    if (r.message.flag !== 1) {
      this.fail(HandshakeStatus.MALFORMED, new TunnelError("ERR_HANDSHAKE_FLAG"));
      return;
    }
    const info = r.message.body;
    const d = decideStatus(info, this.ctx, () => certificateIdentities(this.socket));
    if (d.status !== HandshakeStatus.SUCCESS || !d.cluster || !d.hello) {
      const code = d.status === HandshakeStatus.UNSUPPORTED_VERSION ? "ERR_HANDSHAKE_SHAPE" : "ERR_AUTH";
      this.fail(d.status, new TunnelError(code, `handshake refused with status ${d.status}`));
      return;
    }
    this.settle();
    this.ctx.onAccepted(this.socket, { info, hello: d.hello, cluster: d.cluster, rest: r.rest });
  }

  onDrain(): void {}

  onEnd(): void {
    this.fail(null, new TunnelError("ERR_HANDSHAKE_CLOSED"));
  }

  onClose(): void {
    if (!this.settled) {
      this.settle();
      this.ctx.onRefused(this.socket, null, new TunnelError("ERR_HANDSHAKE_CLOSED"));
    }
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.ctx.onSettled(this.socket);
  }

  private fail(status: number | null, error: TunnelError): void {
    if (this.settled) return;
    this.settle();
    if (status !== null) {
      this.socket.write(encodeHandshake({ flag: 2, body: { status } }));
      this.socket.end();
    } else {
      this.socket.terminate();
    }
    this.ctx.onRefused(this.socket, status, error);
  }
}
