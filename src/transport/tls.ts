/**
 * TLS options for Bun.listen / Bun.connect, built from the configured PEM files (checked by transport/pem.ts, which
 * fails closed with ERR_TLS_CONFIG naming the variable and path, never the content), the server's self-signed
 * identity (transport/identity.ts) when it has no TUNNEL_TLS_CERT, and the agent's pins (SPEC.md §6).
 *
 * What Bun 1.4.5 does (bun-platform.md §1.8; pinned by test/security/bun-tls-facts.test.ts):
 * - server: `requestCert` asks for a client certificate; with `rejectUnauthorized: false` the handshake completes
 *   either way and `socket.authorized` says whether the certificate chains to `ca`. The application checks it
 *   (server/handshake.ts) so that a refused agent is told AUTH_FAILED instead of seeing a bare close.
 * - agent: `rejectUnauthorized: true` + `ca` (or the system roots) + `serverName`; transport/tcp.ts waits for
 *   the handshake event and `socket.authorized` before anything is written. With pins: `rejectUnauthorized: false`
 *   and a `verifyServer` that compares the pin of the certificate the server proved it holds the key of.
 * - TUNNEL_TLS_MIN_VERSION: `secureOptions` SSL_OP_NO_* bits, the documented TLSOptions field (Bun's TLSOptions
 *   types no minVersion); a handshake below it fails with the reason on both sides (test/security/tls-pin.test.ts).
 */
import { X509Certificate, constants } from "node:crypto";
import type { TLSOptions } from "bun";
import type { AgentConfig, CommonConfig, ServerConfig } from "../config.ts";
import { certificatePin, certificates, checkPair, readPem } from "./pem.ts";
import { loadOrCreateIdentity } from "./identity.ts";
import type { DialTls, NetSocket, ServerVerifier } from "./tcp.ts";

/** A TLS file a role reads, by the variable that names it. */
export interface TlsFile {
  variable: string;
  path: string;
}

/** The server's TLS material. */
export interface ServerTls {
  options: TLSOptions;
  /** Pin of the certificate served (SPEC.md §6). */
  pin: string;
  /** Where the certificate came from: the TUNNEL_TLS_CERT path, or the self-signed identity's file. */
  certPath: string;
  /** True if this start made the self-signed identity. */
  created: boolean;
}

/** `secureOptions` for TUNNEL_TLS_MIN_VERSION: versions below it are switched off. */
function versionOptions(min: CommonConfig["tlsMinVersion"]): number {
  const below12 = constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1;
  return min === "1.3" ? below12 | constants.SSL_OP_NO_TLSv1_2 : below12;
}

/** The files TLS reads in `config` (set variables only): what certificate reload watches. */
export function tlsFiles(config: ServerConfig | AgentConfig): TlsFile[] {
  const named: [string, string | null][] = [
    ["TUNNEL_TLS_CERT", config.tlsCert],
    ["TUNNEL_TLS_KEY", config.tlsKey],
    config.mode === "server" ? ["TUNNEL_TLS_CLIENT_CA", config.tlsClientCa] : ["TUNNEL_TLS_CA", config.tlsCa],
  ];
  return named.filter((f): f is [string, string] => f[1] !== null).map(([variable, path]) => ({ variable, path }));
}

/**
 * Server TLS: TUNNEL_TLS_CERT/KEY, or (neither set) the self-signed identity in TUNNEL_STATE_DIR; with
 * TUNNEL_TLS_CLIENT_CA, client certificates are requested. Throws TunnelError ERR_TLS_CONFIG.
 */
export async function serverTls(config: ServerConfig): Promise<ServerTls> {
  let cert: string, key: string, certPath: string, created = false;
  if (config.tlsCert !== null && config.tlsKey !== null) {
    cert = (await readPem("TUNNEL_TLS_CERT", config.tlsCert)) ?? "";
    key = (await readPem("TUNNEL_TLS_KEY", config.tlsKey)) ?? "";
    certPath = config.tlsCert;
    checkPair({ certVar: "TUNNEL_TLS_CERT", certPath, cert, keyVar: "TUNNEL_TLS_KEY", keyPath: config.tlsKey, key });
  } else {
    ({ cert, key, certPath, created } = await loadOrCreateIdentity(config.stateDir));
  }
  const pin = certificatePin(new X509Certificate(cert));
  const base = { cert, key, secureOptions: versionOptions(config.tlsMinVersion) };
  const clientCa = await readPem("TUNNEL_TLS_CLIENT_CA", config.tlsClientCa);
  if (clientCa === undefined) return { options: base, pin, certPath, created };
  certificates("TUNNEL_TLS_CLIENT_CA", config.tlsClientCa ?? "", clientCa);
  // rejectUnauthorized false: the handshake completes and server/handshake.ts refuses unverified agents itself.
  return { options: { ...base, ca: clientCa, requestCert: true, rejectUnauthorized: false }, pin, certPath, created };
}

/**
 * A verifier accepting exactly a server certificate whose pin is one of `pins` (canonical, SPEC.md §6), whatever
 * its CA, name or dates. The TLS handshake has proved the server holds that certificate's key.
 */
export function pinVerifier(pins: readonly string[]): ServerVerifier {
  const accepted = new Set(pins);
  return (socket: NetSocket) => {
    const cert = socket.getPeerX509Certificate() as X509Certificate | undefined;
    if (cert === undefined) return "the server sent no certificate";
    const pin = certificatePin(cert);
    return accepted.has(pin) ? null : `server certificate ${pin} matches no TUNNEL_TLS_PIN`;
  };
}

/**
 * Agent TLS: verifies the server against TUNNEL_TLS_PIN, else TUNNEL_TLS_CA (or the system roots); optional
 * client certificate. Throws TunnelError ERR_TLS_CONFIG.
 */
export async function agentTls(config: AgentConfig): Promise<DialTls> {
  const ca = await readPem("TUNNEL_TLS_CA", config.tlsCa);
  if (ca !== undefined) certificates("TUNNEL_TLS_CA", config.tlsCa ?? "", ca);
  const cert = await readPem("TUNNEL_TLS_CERT", config.tlsCert);
  const key = await readPem("TUNNEL_TLS_KEY", config.tlsKey);
  if (cert !== undefined && key !== undefined) {
    checkPair({ certVar: "TUNNEL_TLS_CERT", certPath: config.tlsCert ?? "", cert, keyVar: "TUNNEL_TLS_KEY", keyPath: config.tlsKey ?? "", key });
  }
  const pinned = config.tlsPins.length > 0;
  return {
    rejectUnauthorized: !pinned,
    secureOptions: versionOptions(config.tlsMinVersion),
    ...(pinned ? { verifyServer: pinVerifier(config.tlsPins) } : {}),
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
    ...(config.tlsServerName ? { serverName: config.tlsServerName } : {}),
  };
}

/** The subject CN of a PEM certificate (its first certificate), or null if it has none or does not parse. */
export function certificateCommonName(pem: string): string | null {
  try {
    const m = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(pem).subject);
    return m?.[1]?.trim() || null;
  } catch {
    return null;
  }
}

/** RFC 9266's exporter label for channel bindings (`tls-exporter`). */
const EXPORTER_LABEL = "EXPORTER-Channel-Binding";

/**
 * The channel binding of a connection, for credentials bound to it (SPEC.md §1.7): `tls-exporter:<64 hex>` (32 bytes
 * of RFC 9266's keying-material exporter, the same on both ends of one TLS connection and different on every other)
 * once the TLS handshake is done, `plaintext` for a plain TCP socket, `websocket` for any WebSocket connection (a
 * reverse proxy may terminate its TLS, so no exporter is shared end to end). Never throws: a TLS socket that cannot export
 * yields `tls-exporter:unavailable`, which matches nothing an honest peer signs.
 */
export function channelBinding(socket: { exportKeyingMaterial?(length: number, label: string, context: Buffer): Buffer; transport?: string }, tls: boolean): string {
  if (socket.transport === "websocket") return "websocket";
  if (!tls) return "plaintext";
  try {
    const ekm = socket.exportKeyingMaterial?.(32, EXPORTER_LABEL, Buffer.alloc(0));
    return ekm !== undefined && ekm.byteLength === 32 ? `tls-exporter:${ekm.toString("hex")}` : "tls-exporter:unavailable";
  } catch {
    return "tls-exporter:unavailable";
  }
}
