/**
 * TLS options for Bun.listen / Bun.connect, built from the configured PEM files. Reading and checking the files is
 * the only I/O here. Fails closed: a missing or unreadable file, a CA or certificate file without a parseable
 * certificate, a key file without a usable key, or a key that does not match its certificate is a TunnelError
 * ERR_TLS_CONFIG naming the variable and path (never the content).
 *
 * What Bun 1.4.5 does (bun-platform.md §1.8; pinned by test/security/bun-tls-facts.test.ts):
 * - server: `requestCert` asks for a client certificate; with `rejectUnauthorized: false` the handshake completes
 *   either way and `socket.authorized` says whether the certificate chains to `ca`. The application checks it
 *   (server/handshake.ts) so that a refused agent is told AUTH_FAILED instead of seeing a bare close.
 * - agent: `rejectUnauthorized: true` + `ca` (or the system roots) + `serverName`; transport/tcp.ts waits for
 *   the handshake event and `socket.authorized` before anything is written.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { TLSOptions } from "bun";
import type { AgentConfig, ServerConfig } from "../config.ts";
import { TunnelError } from "../errors.ts";

async function readPem(variable: string, path: string | null): Promise<string | undefined> {
  if (path === null) return undefined;
  try {
    return await Bun.file(path).text();
  } catch (e) {
    throw new TunnelError("ERR_TLS_CONFIG", `${variable}: cannot read ${path}`, { cause: e });
  }
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates in a PEM text; throws ERR_TLS_CONFIG if there is none or one does not parse. */
function certificates(variable: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw new TunnelError("ERR_TLS_CONFIG", `${variable}: ${path} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new TunnelError("ERR_TLS_CONFIG", `${variable}: certificate ${i + 1} in ${path} does not parse`);
    }
  });
}

/** Checks a certificate chain file and its key file belong together. */
function checkPair(certVar: string, certPath: string, cert: string, keyVar: string, keyPath: string, key: string): void {
  const [leaf] = certificates(certVar, certPath, cert);
  let keyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch {
    // The parser's message is not passed on: it could quote part of the file.
    throw new TunnelError("ERR_TLS_CONFIG", `${keyVar}: ${keyPath} holds no usable unencrypted PEM private key`);
  }
  if (leaf !== undefined && !leaf.checkPrivateKey(keyObject)) {
    throw new TunnelError("ERR_TLS_CONFIG", `${keyVar}: ${keyPath} is not the key of the certificate in ${certVar}`);
  }
}

/** Server TLS: certificate and key required; with TUNNEL_TLS_CLIENT_CA, client certificates are requested. */
export async function serverTls(config: ServerConfig): Promise<TLSOptions> {
  const cert = await readPem("TUNNEL_TLS_CERT", config.tlsCert);
  const key = await readPem("TUNNEL_TLS_KEY", config.tlsKey);
  if (!cert || !key || config.tlsCert === null || config.tlsKey === null) {
    throw new TunnelError("ERR_TLS_CONFIG", "TLS is on: set TUNNEL_TLS_CERT and TUNNEL_TLS_KEY");
  }
  checkPair("TUNNEL_TLS_CERT", config.tlsCert, cert, "TUNNEL_TLS_KEY", config.tlsKey, key);
  const clientCa = await readPem("TUNNEL_TLS_CLIENT_CA", config.tlsClientCa);
  if (clientCa === undefined) return { cert, key };
  certificates("TUNNEL_TLS_CLIENT_CA", config.tlsClientCa ?? "", clientCa);
  // rejectUnauthorized false: the handshake completes and server/handshake.ts refuses unverified agents itself.
  return { cert, key, ca: clientCa, requestCert: true, rejectUnauthorized: false };
}

/** Agent TLS: verifies the server against TUNNEL_TLS_CA (or system roots); optional client certificate. */
export async function agentTls(config: AgentConfig): Promise<TLSOptions> {
  const ca = await readPem("TUNNEL_TLS_CA", config.tlsCa);
  if (ca !== undefined) certificates("TUNNEL_TLS_CA", config.tlsCa ?? "", ca);
  const cert = await readPem("TUNNEL_TLS_CERT", config.tlsCert);
  const key = await readPem("TUNNEL_TLS_KEY", config.tlsKey);
  if (cert !== undefined && key !== undefined) {
    checkPair("TUNNEL_TLS_CERT", config.tlsCert ?? "", cert, "TUNNEL_TLS_KEY", config.tlsKey ?? "", key);
  }
  return {
    rejectUnauthorized: true,
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
 * once the TLS handshake is done, `plaintext` for a plain TCP socket. Never throws: a TLS socket that cannot export
 * yields `tls-exporter:unavailable`, which matches nothing an honest peer signs.
 */
export function channelBinding(socket: { exportKeyingMaterial?(length: number, label: string, context: Buffer): Buffer }, tls: boolean): string {
  if (!tls) return "plaintext";
  try {
    const ekm = socket.exportKeyingMaterial?.(32, EXPORTER_LABEL, Buffer.alloc(0));
    return ekm !== undefined && ekm.byteLength === 32 ? `tls-exporter:${ekm.toString("hex")}` : "tls-exporter:unavailable";
  } catch {
    return "tls-exporter:unavailable";
  }
}
