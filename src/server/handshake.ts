/**
 * Server side of the handshake: one ConnectionInitInfo in, one ConnectionInitResponse out, under a deadline that
 * covers everything from TCP accept (the TLS handshake included) to the response. Statuses follow MOSN (SPEC.md
 * §1.2): unknown policy or not the cluster's policy → 3, unknown cluster → 4, credential that does not verify → 2,
 * then ours (16, 18), else 1. With TUNNEL_TLS_CLIENT_CA every connection must present a client certificate that
 * verifies against it (`socket.authorized`, checked here once TLS completes) or it is refused with 2.
 *
 * Also here: the pre-handshake gate's helpers: {@link AuthPenalties} (sources that keep failing authentication are
 * refused for a while) and {@link refuseEarly}.
 */
import { HandshakeDecoder, encodeHandshake, readBackchannelHello, type BackchannelHello, type ConnectionInitInfo } from "../protocol/handshake.ts";
import { HandshakeStatus, STREAM_PROTOCOL_VERSION } from "../protocol/constants.ts";
import { verifyCredential, type ReplayGuard } from "../auth/credential.ts";
import { TunnelError } from "../errors.ts";
import type { ClusterConfig, ServerConfig } from "../config.ts";
import type { NetSocket, SocketOwner } from "../transport/tcp.ts";

/** Statuses that count as a failed authentication attempt for {@link AuthPenalties}. */
const AUTH_FAILURE_STATUSES: ReadonlySet<number> = new Set([
  HandshakeStatus.AUTH_FAILED,
  HandshakeStatus.VALIDATOR_NOT_FOUND,
  HandshakeStatus.CLUSTER_NOT_EXIST,
]);
/** Sources remembered at most by {@link AuthPenalties} (the oldest are forgotten first). */
const MAX_PENALTY_ENTRIES = 65_536;

interface PenaltyEntry {
  /** Failures in the current window. */
  count: number;
  windowStart: number;
  /** Refused until this time (ms, Date.now clock). */
  until: number;
  /** Penalties served so far: each doubles the next. */
  strikes: number;
  last: number;
}

/** Settings of {@link AuthPenalties} (TUNNEL_AUTH_FAILURE_LIMIT etc.; limit 0 turns penalties off). */
export interface PenaltySettings {
  authFailureLimit: number;
  authFailureWindowMs: number;
  authPenaltyMs: number;
  authPenaltyMaxMs: number;
}

/**
 * Per-source penalties for failed authentication (after OpenSSH's PerSourcePenalties): `limit` failures from one
 * address within `window` → new connections from it are refused for `penalty`, doubling with each further penalty
 * up to `max`. A source is forgotten once it has been quiet for `window + max`. Bounded memory.
 */
export class AuthPenalties {
  private readonly entries = new Map<string, PenaltyEntry>();

  constructor(
    private readonly s: PenaltySettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a failed authentication from `ip`; returns the penalty (ms) it started, or 0. */
  failure(ip: string): number {
    if (this.s.authFailureLimit <= 0) return 0;
    const now = this.now();
    let e = this.entries.get(ip);
    if (e === undefined) {
      if (this.entries.size >= MAX_PENALTY_ENTRIES) this.prune(now);
      e = { count: 0, windowStart: now, until: 0, strikes: 0, last: now };
    } else {
      this.entries.delete(ip); // re-insert: the map stays in least-recently-failed order
      if (now - e.last > this.s.authFailureWindowMs + this.s.authPenaltyMaxMs) e.strikes = 0;
    }
    this.entries.set(ip, e);
    if (now - e.windowStart > this.s.authFailureWindowMs) {
      e.count = 0;
      e.windowStart = now;
    }
    e.count++;
    e.last = now;
    if (e.count < this.s.authFailureLimit) return 0;
    const ms = Math.min(this.s.authPenaltyMaxMs, this.s.authPenaltyMs * 2 ** Math.min(e.strikes, 30));
    e.until = now + ms;
    e.strikes++;
    e.count = 0;
    e.windowStart = now;
    return ms;
  }

  /** How long `ip` is still refused (ms); 0 if it is not. */
  remainingMs(ip: string): number {
    const e = this.entries.get(ip);
    if (e === undefined) return 0;
    const left = e.until - this.now();
    return left > 0 ? Math.ceil(left) : 0;
  }

  /** Sources currently remembered. */
  get size(): number {
    return this.entries.size;
  }

  private prune(now: number): void {
    const forgetAfter = this.s.authFailureWindowMs + this.s.authPenaltyMaxMs;
    for (const [ip, e] of this.entries) if (now - e.last > forgetAfter && e.until <= now) this.entries.delete(ip);
    // Still nearly full: forget the least recently failed eighth at once (amortised O(1) per failure).
    const keep = MAX_PENALTY_ENTRIES - (MAX_PENALTY_ENTRIES >> 3);
    for (const ip of this.entries.keys()) {
      if (this.entries.size <= keep) break;
      this.entries.delete(ip);
    }
  }
}

/** Owner for a connection refused before its handshake: ignores everything until the socket is gone. */
const REFUSED: SocketOwner = { onData() {}, onDrain() {}, onEnd() {}, onClose() {} };

/**
 * Refuses a connection at accept (pending-handshake caps, penalties): a plaintext one is answered SERVER_BUSY with
 * `retryAfterMs` and closed; a TLS one is closed at once (nothing can be written before its TLS handshake, and
 * finishing TLS for a refused peer would cost more than it tells). Returns the owner for `accept` (null: kill).
 */
export function refuseEarly(socket: NetSocket, tls: boolean, retryAfterMs: number): SocketOwner | null {
  if (tls) return null;
  socket.write(encodeHandshake({ flag: 2, body: { status: HandshakeStatus.SERVER_BUSY, retry_after_ms: Math.ceil(retryAfterMs) } }));
  socket.end();
  return REFUSED;
}

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
  /** TLS: the TLS handshake has not completed (and verified, under TUNNEL_TLS_CLIENT_CA) yet. */
  private tlsPending: boolean;

  constructor(
    private readonly socket: NetSocket,
    private readonly ctx: HandshakeContext,
  ) {
    this.decoder = new HandshakeDecoder({ maxBodyBytes: ctx.config.handshakeMaxBytes, accept: [1] });
    this.tlsPending = ctx.config.tls;
    // Started at TCP accept (TLS listeners fire open before the TLS handshake): one deadline for TLS + InitInfo.
    this.timer = setTimeout(() => this.fail(null, new TunnelError("ERR_HANDSHAKE_TIMEOUT")), ctx.config.handshakeTimeoutMs);
  }

  /** TLS listener: the TLS handshake finished. Under TUNNEL_TLS_CLIENT_CA the client certificate must verify. */
  onHandshake(ok: boolean, error: Error | null): void {
    if (this.settled) return;
    if (!ok) {
      this.fail(null, new TunnelError("ERR_TLS", `TLS handshake failed: ${tlsReason(error)}`));
      return;
    }
    if (this.ctx.config.tlsClientCa !== null && !this.socket.authorized) {
      // No certificate, or one that does not chain to TUNNEL_TLS_CLIENT_CA: refused like a bad credential.
      this.fail(HandshakeStatus.AUTH_FAILED, new TunnelError("ERR_TLS", `client certificate refused: ${tlsReason(error)}`), true);
      return;
    }
    this.tlsPending = false;
  }

  onData(chunk: Uint8Array): void {
    if (this.settled) return;
    if (this.tlsPending) {
      // Bun delivers data only after the handshake event; never act on bytes before TLS (and the client
      // certificate) were checked.
      this.fail(null, new TunnelError("ERR_TLS", "data before the TLS handshake completed"));
      return;
    }
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

  private fail(status: number | null, error: TunnelError, authFailure = status !== null && AUTH_FAILURE_STATUSES.has(status)): void {
    if (this.settled) return;
    this.settle();
    if (authFailure) this.ctx.penalties?.failure(this.socket.remoteAddress);
    if (status !== null) {
      this.socket.write(encodeHandshake({ flag: 2, body: { status } }));
      this.socket.end();
    } else {
      this.socket.terminate();
    }
    this.ctx.onRefused(this.socket, status, error);
  }
}

/** `CODE: message` of a TLS error, for logs (never contains key material). */
function tlsReason(error: Error | null): string {
  if (error === null) return "not verified";
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? `${code}: ${error.message}` : error.message;
}
