/**
 * Value parsers for the middlebox variables: TUNNEL_SERVERS entries (`host:port`, `wss://host[:port][/path]`,
 * `ws://…`), TUNNEL_PROXY and the proxy environment variables (`http://[user:password@]host:port`), TUNNEL_WS_PATH and
 * TUNNEL_TRUSTED_PROXIES. Pure; messages never echo a password.
 */
import type { CidrBlock, ProxyConfig, ServerAddress } from "./config-types.ts";
import { entries, ok, parseHostPort, sameAddress, type Parsed } from "./config-parse.ts";
import { inCidrs, parseCidr } from "./protocol/forwarded.ts";

/** The WebSocket path agents use and servers accept unless configured (TUNNEL_WS_PATH, a URL's path). */
export const DEFAULT_WS_PATH = "/backchannel";
const PATH_RE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,255}$/;

/** One TUNNEL_SERVERS (or servers file) entry: `host:port`, or `wss://host[:port][/path]` / `ws://…`. */
export function parseServerEntry(entry: string): ServerAddress | string {
  const m = /^(wss?):\/\/(\[[^\]]*\]|[^/:[\]]*)(?::(\d{1,5}))?(\/[^?#]*)?$/i.exec(entry.trim());
  if (!m) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry.trim())) return "expected host:port, wss://host[:port][/path] or ws://host[:port][/path]";
    return parseHostPort(entry, { allowPortZero: false });
  }
  const tls = (m[1] as string).toLowerCase() === "wss";
  const port = m[3] === undefined ? (tls ? 443 : 80) : Number(m[3]);
  const addr = parseHostPort(`${m[2]}:${port}`, { allowPortZero: false });
  if (typeof addr === "string") return `in the URL: ${addr}`;
  const path = m[4] ?? DEFAULT_WS_PATH;
  if (!PATH_RE.test(path)) return "expected a URL path of letters, digits and /._~-";
  return { ...addr, ws: { tls, path } };
}

/** TUNNEL_SERVERS: entries as {@link parseServerEntry}, comma-separated, at least one; no duplicates. */
export function parseServers(raw: string): Parsed<ServerAddress[]> {
  const errors: string[] = [];
  const servers: ServerAddress[] = [];
  for (const entry of entries(raw)) {
    const server = parseServerEntry(entry);
    if (typeof server === "string") errors.push(`entry "${entry}": ${server}`);
    else if (servers.some((s) => sameAddress(s, server) && s.ws?.path === server.ws?.path)) errors.push(`entry "${entry}": listed twice`);
    else servers.push(server);
  }
  if (errors.length > 0) return { ok: false, errors };
  if (servers.length === 0) return { ok: false, errors: ["expected at least one host:port entry"] };
  return ok(servers);
}

/**
 * An HTTP proxy URL: `http://[user[:password]@]host[:port]` (port 80 if omitted; user and password
 * percent-decoded). `source` names the variable. Messages never contain the user information.
 */
export function parseProxyUrl(raw: string, source: string): ProxyConfig | string {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/]*)@)?(\[[^\]]*\]|[^/:@[\]]+)(?::(\d{1,5}))?\/?$/i.exec(raw.trim());
  if (!m) return "expected http://[user:password@]host:port";
  if ((m[1] as string).toLowerCase() !== "http") return `expected an http:// proxy URL (scheme ${(m[1] as string).toLowerCase()}:// is not supported)`;
  const addr = parseHostPort(`${m[3]}:${m[4] ?? "80"}`, { allowPortZero: false });
  if (typeof addr === "string") return `expected http://[user:password@]host:port: ${addr}`;
  let user: string | null = null;
  let password: string | null = null;
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(":");
    try {
      user = decodeURIComponent(colon < 0 ? m[2] : m[2].slice(0, colon));
      password = colon < 0 ? null : decodeURIComponent(m[2].slice(colon + 1));
    } catch {
      return "expected percent-encoded user and password in the proxy URL";
    }
  }
  return { ...addr, user, password, source };
}

/** TUNNEL_PROXY as a valibot list parser (one value). */
export function parseProxy(raw: string): Parsed<ProxyConfig> {
  const p = parseProxyUrl(raw, "TUNNEL_PROXY");
  return typeof p === "string" ? { ok: false, errors: [p] } : ok(p);
}

/** TUNNEL_TRUSTED_PROXIES: CIDR blocks (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`), comma-separated. */
export function parseTrustedProxies(raw: string): Parsed<CidrBlock[]> {
  const errors: string[] = [];
  const out: CidrBlock[] = [];
  for (const entry of entries(raw)) {
    const c = parseCidr(entry);
    if (c === null) errors.push(`entry "${entry}": expected an IP address or CIDR block (10.0.0.0/8, fd00::/8)`);
    else out.push(c);
  }
  if (errors.length > 0) return { ok: false, errors };
  if (out.length === 0) return { ok: false, errors: ["expected at least one CIDR block"] };
  return ok(out);
}

/** TUNNEL_WS_PATH: an absolute URL path. */
export function parseWsPath(raw: string): Parsed<string> {
  return PATH_RE.test(raw.trim()) ? ok(raw.trim()) : { ok: false, errors: ["expected an absolute path such as /backchannel"] };
}

/** NO_PROXY / no_proxy entries (curl's syntax: `*`, names matching their subdomains too, `.name`, IPs, CIDRs). */
export function parseNoProxy(raw: string): string[] {
  return raw.split(",").map((e) => e.trim().toLowerCase()).filter((e) => e !== "");
}

/**
 * Whether NO_PROXY entries exempt a server `host` (as configured: a name or an IP address) from the proxy: `*`;
 * the host itself or any name in its domain (`example.com` and `.example.com` both match `a.example.com`); an IP
 * address or CIDR block containing an IP host. Case-insensitive.
 */
export function bypassesProxy(noProxy: readonly string[], host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return noProxy.some((raw) => {
    if (raw === "*") return true;
    const e = raw.replace(/^\*?\./, "").replace(/\.$/, "").replace(/^\[(.*)\]$/, "$1");
    if (h === e || h.endsWith(`.${e}`)) return true;
    const block = parseCidr(e);
    return block !== null && inCidrs(h, [block]);
  });
}
