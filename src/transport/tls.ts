/**
 * TLS options for Bun.listen / Bun.connect, built from the configured PEM files. Reading the files is the only
 * I/O here; a missing or unreadable file is a TunnelError ERR_TLS_CONFIG naming the variable (not the content).
 */
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

/** Server TLS: certificate and key required; with TUNNEL_TLS_CLIENT_CA, client certificates are requested. */
export async function serverTls(config: ServerConfig): Promise<TLSOptions> {
  const cert = await readPem("TUNNEL_TLS_CERT", config.tlsCert);
  const key = await readPem("TUNNEL_TLS_KEY", config.tlsKey);
  if (!cert || !key) throw new TunnelError("ERR_TLS_CONFIG", "TLS is on: set TUNNEL_TLS_CERT and TUNNEL_TLS_KEY");
  const clientCa = await readPem("TUNNEL_TLS_CLIENT_CA", config.tlsClientCa);
  return clientCa
    ? { cert, key, ca: clientCa, requestCert: true, rejectUnauthorized: false }
    : { cert, key };
}

/** Agent TLS: verifies the server against TUNNEL_TLS_CA (or system roots); optional client certificate. */
export async function agentTls(config: AgentConfig): Promise<TLSOptions> {
  const ca = await readPem("TUNNEL_TLS_CA", config.tlsCa);
  const cert = await readPem("TUNNEL_TLS_CERT", config.tlsCert);
  const key = await readPem("TUNNEL_TLS_KEY", config.tlsKey);
  return {
    rejectUnauthorized: true,
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
    ...(config.tlsServerName ? { serverName: config.tlsServerName } : {}),
  };
}
