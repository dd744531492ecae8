/**
 * Credential policies (shared by agent and server): making a credential on the agent and verifying it on the
 * server. Secrets are compared in constant time over fixed-length digests and never logged.
 *
 * - `token`: the credential is the shared secret itself (send it over TLS only).
 * - `hmac-sha256`: `v2.<unix-ms>.<nonce-hex>.<hmac-hex>` where the HMAC (key = secret) covers
 *   `backchannel-v2\n<cluster>\n<host_name>\n<unix-ms>\n<nonce>\n<binding>`; accepted within ±{@link HMAC_MAX_SKEW_MS}
 *   of the server's clock, each nonce once per server, and only on a connection with the same binding: the TLS
 *   exporter of this very connection (RFC 9266's `tls-exporter`), so a handshake captured by one server cannot be
 *   replayed to another; `plaintext` without TLS (SPEC.md §1.7).
 * - `mtls`: the credential is ignored; the TLS client certificate's identity is checked by the server.
 * - `none`: nothing is checked (must be configured explicitly on the server).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** How far an hmac-sha256 credential's timestamp may be from the server's clock (ms). */
export const HMAC_MAX_SKEW_MS = 60_000;
/** Nonces remembered at most (older ones expire with the skew window anyway). */
const MAX_REMEMBERED_NONCES = 100_000;

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Constant-time equality of two strings (compares SHA-256 digests, so lengths leak nothing). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

function hmacPayload(cluster: string, hostName: string, ts: number, nonce: string, binding: string): string {
  return `backchannel-v2\n${cluster}\n${hostName}\n${ts}\n${nonce}\n${binding}`;
}

/**
 * Agent side: the credential to send for a policy. A fresh one per connection attempt (hmac), bound to the
 * connection by `binding` (transport/tls.ts channelBinding).
 */
export function makeCredential(
  policy: string,
  secret: string | null,
  cluster: string,
  hostName: string,
  binding: string,
  now: number = Date.now(),
): string {
  if (policy === "token") return secret ?? "";
  if (policy === "hmac-sha256") {
    const nonce = randomBytes(16).toString("hex");
    const mac = createHmac("sha256", secret ?? "").update(hmacPayload(cluster, hostName, now, nonce, binding)).digest("hex");
    return `v2.${now}.${nonce}.${mac}`;
  }
  return "";
}

/** Server side: remembers hmac nonces to refuse replays. One per server. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** True if the nonce is new (and records it until `expiresAt`). */
  remember(nonce: string, now: number): boolean {
    if (this.seen.has(nonce)) return false;
    if (this.seen.size >= MAX_REMEMBERED_NONCES) this.prune(now);
    if (this.seen.size >= MAX_REMEMBERED_NONCES) return false; // fail closed under a flood
    this.seen.set(nonce, now + 2 * HMAC_MAX_SKEW_MS);
    return true;
  }

  private prune(now: number): void {
    for (const [nonce, expiresAt] of this.seen) if (expiresAt <= now) this.seen.delete(nonce);
  }
}

const HMAC_RE = /^v2\.(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{64})$/;

/**
 * Server side: verifies a token or hmac-sha256 credential against the cluster's secret, hmac on a connection whose
 * own `binding` (channelBinding of the server's socket) must be the one the agent signed.
 * Never throws; returns false for anything malformed, stale, replayed or bound to another connection.
 */
export function verifyCredential(
  policy: "token" | "hmac-sha256",
  secret: string,
  credential: string,
  cluster: string,
  hostName: string,
  replay: ReplayGuard,
  binding: string,
  now: number = Date.now(),
): boolean {
  if (policy === "token") return secretEquals(credential, secret);
  const m = HMAC_RE.exec(credential);
  if (m === null) return false;
  const ts = Number(m[1]);
  const nonce = m[2] as string;
  if (!Number.isSafeInteger(ts) || Math.abs(now - ts) > HMAC_MAX_SKEW_MS) return false;
  const expected = createHmac("sha256", secret).update(hmacPayload(cluster, hostName, ts, nonce, binding)).digest();
  const given = Buffer.from(m[3] as string, "hex");
  if (!timingSafeEqual(expected, given)) return false;
  return replay.remember(nonce, now);
}
