/** Value parsers for TUNNEL_* variables: host:port and the list variables (schemas around them: config-schemas.ts). Pure. */
import { isIPv4, isIPv6 } from "node:net";
import type {
  ClusterConfig,
  CredentialPolicy,
  HostPort,
  Protocol,
  ServerDiscovery,
  ServiceConfig,
} from "./config-types.ts";

/** Result of a list parser: the value, or one message per bad entry (never containing a secret). */
export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** Cluster, service and route-target names: the charset SPEC.md §2.1 allows on the wire. */
export const NAME_RE = /^[A-Za-z0-9._-]{1,255}$/;
/** NAME_RE as text for messages. */
export const NAME_TEXT = "[A-Za-z0-9._-]{1,255}";
/** Host names (and IPv4 literals) accepted in host:port. */
const HOST_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$/;
/** Every credential policy, in the order help text lists them. */
export const POLICIES = ["token", "hmac-sha256", "mtls", "none"] as const satisfies readonly CredentialPolicy[];
/** Shortest secret accepted for the token and hmac-sha256 policies. */
export const MIN_SECRET_CHARS = 16;

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });

/** Checks a host name or IP literal (no brackets); returns an error message or null. */
function hostError(host: string): string | null {
  if (host.includes(":")) return "IPv6 addresses need brackets, e.g. [::1]:7000";
  if (!HOST_RE.test(host)) return "expected a host name or IP address before ':'";
  if (/^[0-9.]+$/.test(host) && !isIPv4(host)) return "expected a valid IPv4 address";
  return null;
}

/**
 * Parses `host:port`, `[ipv6]:port`, or (when `bareHost` is given) a bare port meaning `bareHost:port`.
 * Ports are 0..65535, or 1..65535 unless `allowPortZero` (listen addresses accept 0: the OS picks a port).
 * Returns the address (IPv6 host without brackets) or an "expected …" message that does not echo the input.
 */
export function parseHostPort(raw: string, opts: { allowPortZero: boolean; bareHost?: string }): HostPort | string {
  const s = raw.trim();
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return "expected [ipv6]:port";
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (!isIPv6(host)) return "expected an IPv6 address inside [ ]";
  } else if (opts.bareHost !== undefined && /^\d+$/.test(s)) {
    host = opts.bareHost;
    portText = s;
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return opts.bareHost === undefined ? "expected host:port" : "expected host:port or a port";
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    const bad = hostError(host);
    if (bad) return bad;
  }
  const min = opts.allowPortZero ? 0 : 1;
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= min && port <= 65535)) return `expected host:port with a port ${min}..65535`;
  return { host, port };
}

/** Formats an address for messages: `[::1]:7000` or `127.0.0.1:7000`. */
export function formatHostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Splits a comma-separated list, trimming entries and dropping empty ones. */
export function entries(raw: string): string[] {
  return raw
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
}

/** Splits at the first occurrence of `sep`; `rest` is null when `sep` is absent. */
function cut(s: string, sep: string): [string, string | null] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
}

/**
 * TUNNEL_CLUSTERS: `name=policy[:secret]`, comma-separated, at least one. Messages name entries by position and
 * (when well-formed) name only: an entry may hold a secret, and a mistyped one may hold it anywhere.
 */
export function parseClusters(raw: string): Parsed<ClusterConfig[]> {
  const errors: string[] = [];
  const clusters: ClusterConfig[] = [];
  entries(raw).forEach((entry, i) => {
    const [name, rest] = cut(entry, "=");
    const label = rest !== null && NAME_RE.test(name) ? `entry ${i + 1} ("${name}")` : `entry ${i + 1}`;
    if (rest === null) return errors.push(`${label}: expected name=policy[:secret]`);
    if (!NAME_RE.test(name)) return errors.push(`${label}: cluster name must match ${NAME_TEXT}`);
    const [policy, param] = cut(rest, ":");
    if (!(POLICIES as readonly string[]).includes(policy)) {
      return errors.push(`${label}: unknown policy; expected one of ${POLICIES.join(", ")}`);
    }
    if (clusters.some((c) => c.name === name)) return errors.push(`${label}: cluster "${name}" is listed twice`);
    const cluster = clusterOf(name, policy as CredentialPolicy, param);
    if (typeof cluster === "string") return errors.push(`${label}: ${cluster}`);
    clusters.push(cluster);
  });
  if (errors.length > 0) return { ok: false, errors };
  if (clusters.length === 0) return { ok: false, errors: ["expected at least one name=policy[:secret] entry"] };
  return ok(clusters);
}

function clusterOf(name: string, policy: CredentialPolicy, param: string | null): ClusterConfig | string {
  switch (policy) {
    case "token":
    case "hmac-sha256":
      if (param === null || param.length < MIN_SECRET_CHARS) {
        return `policy ${policy} needs a secret of at least ${MIN_SECRET_CHARS} characters (name=${policy}:secret)`;
      }
      return { name, policy, secret: param, allowedIdentities: [] };
    case "mtls": {
      const ids = (param ?? "").split("|").map((s) => s.trim()).filter((s) => s !== "");
      return { name, policy, secret: null, allowedIdentities: ids.length > 0 ? ids : [name] };
    }
    case "none":
      if (param !== null) return "policy none takes nothing after the policy";
      return { name, policy, secret: null, allowedIdentities: [] };
  }
}

export function sameAddress(a: HostPort, b: HostPort): boolean {
  return a.port === b.port && a.host.toLowerCase() === b.host.toLowerCase();
}

/**
 * Splits a transport suffix off an address (`127.0.0.1:53/udp`, in the style of container port mappings): `/udp`
 * or `/tcp` (the default, also without a suffix). Anything else after a `/` is an error message.
 */
export function cutProtocol(text: string): { text: string; protocol: Protocol } | string {
  const i = text.lastIndexOf("/");
  if (i < 0) return { text, protocol: "tcp" };
  const suffix = text.slice(i + 1).toLowerCase();
  if (suffix !== "udp" && suffix !== "tcp") return `"/${text.slice(i + 1)}" after the address: expected /udp or /tcp`;
  return { text: text.slice(0, i), protocol: suffix };
}

/** TUNNEL_SERVICES: `name=host:port[/udp][;proxy=v1|v2]`, comma-separated, at least one; target port 1..65535. */
export function parseServices(raw: string): Parsed<ServiceConfig[]> {
  const errors: string[] = [];
  const services: ServiceConfig[] = [];
  for (const entry of entries(raw)) {
    const service = serviceOf(entry);
    if (typeof service === "string") errors.push(`entry "${entry}": ${service}`);
    else if (services.some((s) => s.name === service.name)) {
      errors.push(`entry "${entry}": service "${service.name}" is listed twice`);
    } else services.push(service);
  }
  if (errors.length > 0) return { ok: false, errors };
  if (services.length === 0) return { ok: false, errors: ["expected at least one name=host:port entry"] };
  return ok(services);
}

function serviceOf(entry: string): ServiceConfig | string {
  const [main, ...options] = entry.split(";").map((s) => s.trim());
  const [name, targetText] = cut(main ?? "", "=");
  if (targetText === null) return "expected name=host:port[/udp][;proxy=v1|v2]";
  if (!NAME_RE.test(name)) return `service name must match ${NAME_TEXT}`;
  const address = cutProtocol(targetText);
  if (typeof address === "string") return address;
  const target = parseHostPort(address.text, { allowPortZero: false });
  if (typeof target === "string") return target;
  let proxyProtocol: ServiceConfig["proxyProtocol"] = null;
  for (const option of options) {
    const [key, value] = cut(option, "=");
    if (key !== "proxy") return `unknown option "${key}" (known: proxy=v1|v2)`;
    if (value !== "v1" && value !== "v2") return "option proxy must be v1 or v2";
    if (proxyProtocol !== null) return "option proxy is given twice";
    proxyProtocol = value;
  }
  if (proxyProtocol !== null && address.protocol === "udp") return "option proxy is for TCP services, not /udp";
  return { name, host: target.host, port: target.port, proxyProtocol, protocol: address.protocol };
}

/** TUNNEL_DNS_SERVERS: IP addresses with optional ports (`10.0.0.2`, `127.0.0.1:5353`, `[::1]:53`). */
export function parseDnsServers(raw: string): Parsed<string[]> {
  const errors: string[] = [];
  const out: string[] = [];
  for (const entry of entries(raw)) {
    const bare = isIPv4(entry) || isIPv6(entry);
    const a = bare ? { host: entry, port: 53 } : parseHostPort(entry, { allowPortZero: false });
    if (typeof a === "string" || !(isIPv4(a.host) || isIPv6(a.host))) {
      errors.push(`entry "${entry}": expected an IP address with an optional port`);
    } else out.push(isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);
  }
  if (errors.length > 0) return { ok: false, errors };
  if (out.length === 0) return { ok: false, errors: ["expected at least one DNS server"] };
  return ok(out);
}

/** TUNNEL_SERVER_DISCOVERY: `dns:name:port` or `file:path`. */
export function parseDiscovery(raw: string): Parsed<ServerDiscovery> {
  const [kind, rest] = cut(raw.trim(), ":");
  if (kind === "file" && rest !== null && rest.trim() !== "") return ok({ kind: "file", path: rest.trim() });
  if (kind === "dns" && rest !== null) {
    const a = parseHostPort(rest, { allowPortZero: false });
    if (typeof a !== "string") return ok({ kind: "dns", name: a.host, port: a.port });
    return { ok: false, errors: [`expected dns:name:port: ${a}`] };
  }
  return { ok: false, errors: ["expected dns:name:port or file:path"] };
}

/** Bytes in a SHA-256 digest: the length of every TUNNEL_TLS_PIN. */
const PIN_BYTES = 32;

/**
 * One pin: `sha256:` then the 32-byte digest as hex (64 digits, `:` between bytes allowed, any case) or base64
 * (standard or URL-safe, padding optional, canonical: no stray bits in the last character). Returns the canonical
 * form `sha256:<standard base64>`, or null.
 */
export function canonicalPin(entry: string): string | null {
  const m = /^sha256:(.+)$/i.exec(entry.trim());
  const value = m?.[1]?.trim() ?? "";
  let digest: Buffer | null = null;
  const hex = value.replaceAll(":", "");
  if (/^[0-9a-f]{64}$/i.test(hex)) digest = Buffer.from(hex, "hex");
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(value)) {
    const b64 = value.replaceAll("-", "+").replaceAll("_", "/").replace(/=$/, "");
    digest = Buffer.from(b64, "base64");
    // Unused low bits in the last character: not what any tool prints, so most likely a typo.
    if (digest.toString("base64").replace(/=$/, "") !== b64) digest = null;
  }
  return digest?.length === PIN_BYTES ? `sha256:${digest.toString("base64")}` : null;
}

/** TUNNEL_TLS_PIN: pins (see {@link canonicalPin}), comma-separated, at least one; duplicates are dropped. */
export function parsePins(raw: string): Parsed<string[]> {
  const errors: string[] = [];
  const pins: string[] = [];
  entries(raw).forEach((entry, i) => {
    const pin = canonicalPin(entry);
    if (pin === null) errors.push(`entry ${i + 1} ("${entry.slice(0, 80)}"): expected sha256:<base64 or hex of 32 bytes>`);
    else if (!pins.includes(pin)) pins.push(pin);
  });
  if (errors.length > 0) return { ok: false, errors };
  if (pins.length === 0) return { ok: false, errors: ["expected at least one sha256:<base64 or hex> pin"] };
  return ok(pins);
}
