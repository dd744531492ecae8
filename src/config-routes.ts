/**
 * TUNNEL_ROUTES: `listen-host:port=cluster/service[;sni=NAME|;host=NAME]`, and the rules for routes that share a
 * listen address (routing by name: server/name-table.ts matches, this file decides what may be configured). Pure.
 */
import type { HostPort, RouteConfig, RouteMatch } from "./config-types.ts";
import { cutProtocol, formatHostPort, NAME_RE, NAME_TEXT, parseHostPort, type Parsed } from "./config-parse.ts";

/** One DNS label as a route name may have it. */
const LABEL = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
/** A route name: a host name, or `*.` and a host name of at least two labels (`*.com` would be too broad). */
const ROUTE_NAME_RE = new RegExp(`^(?=.{1,253}$)(?:\\*\\.(?=${LABEL}\\.)|)${LABEL}(?:\\.${LABEL})*$`);
const SYNTAX = "listen-host:port[/udp]=cluster/service[;sni=NAME|;host=NAME]";

/** Splits at the first occurrence of `sep`; `rest` is null when `sep` is absent. */
function cut(s: string, sep: string): [string, string | null] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
}

/** The text of a match option, for messages: `sni=app.example.com`, or `no sni=/host=` for a default route. */
export function matchText(m: RouteMatch | null): string {
  return m === null ? "no sni=/host=" : `${m.kind}=${m.name}`;
}

/**
 * Parses TUNNEL_ROUTES (comma-separated, may be empty), then checks every listen address shared by several routes
 * (see {@link sharedAddressErrors}). Listen port 0 is a shared address only among routes on the same host that have
 * a match option (plus at most one default route there); plain routes on port 0 each get their own port.
 */
export function parseRoutes(raw: string): Parsed<RouteConfig[]> {
  const errors: string[] = [];
  const routes: RouteConfig[] = [];
  const labels: string[] = [];
  for (const entry of raw.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const route = routeOf(entry);
    if (typeof route === "string") errors.push(`entry "${entry}": ${route}`);
    else {
      routes.push(route);
      labels.push(`entry "${entry}"`);
    }
  }
  errors.push(...sharedAddressErrors(routes, labels));
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: routes };
}

function routeOf(entry: string): RouteConfig | string {
  const [main = "", ...options] = entry.split(";").map((s) => s.trim());
  const [listenText, target] = cut(main, "=");
  const [cluster, service] = target === null ? ["", null] : cut(target, "/");
  if (service === null) return `expected ${SYNTAX}`;
  const address = cutProtocol(listenText);
  if (typeof address === "string") return address;
  const listen = parseHostPort(address.text, { allowPortZero: true });
  if (typeof listen === "string") return listen;
  if (!NAME_RE.test(cluster)) return `cluster name must match ${NAME_TEXT}`;
  if (!NAME_RE.test(service)) return `service name must match ${NAME_TEXT}`;
  let match: RouteMatch | null = null;
  for (const option of options) {
    const [key, value] = cut(option, "=");
    if (key !== "sni" && key !== "host") return `unknown option "${key}" (known: sni=NAME, host=NAME)`;
    if (match !== null) return "give one sni= or host= option per route";
    if (address.protocol === "udp") return `option ${key} is for TCP routes: a /udp route has no name to match`;
    const name = (value ?? "").toLowerCase();
    if (/^\*\.[^.]+$/.test(name)) return `option ${key}: a wildcard needs two or more labels after "*." (e.g. *.example.com)`;
    if (!ROUTE_NAME_RE.test(name) || /^[0-9.]+$/.test(name)) {
      return `option ${key} expects a host name or *.host.name (letters, digits, '-', '_', dots)`;
    }
    match = { kind: key, name };
  }
  return { listen, cluster, service, match, protocol: address.protocol };
}

/** Key of a listen address: host (lower case), port and protocol (TCP and UDP ports are separate). */
function addressKey(a: HostPort, protocol: string): string {
  return `${a.host.toLowerCase()}\u0000${a.port}\u0000${protocol}`;
}

/**
 * Routes that listen on one address: those with a match option and the plain ones. On port 0 plain routes are
 * not part of a group unless the group has named routes (then exactly as on any other port).
 */
export function groupByAddress<R extends { listen: HostPort; match: RouteMatch | null; protocol: string }>(routes: readonly R[]): R[][] {
  const groups = new Map<string, R[]>();
  const named = new Set(routes.filter((r) => r.match !== null).map((r) => addressKey(r.listen, r.protocol)));
  const out: R[][] = [];
  for (const r of routes) {
    const key = addressKey(r.listen, r.protocol);
    if (r.listen.port === 0 && !named.has(key)) {
      out.push([r]);
      continue;
    }
    let g = groups.get(key);
    if (g === undefined) {
      g = [];
      groups.set(key, g);
      out.push(g);
    }
    g.push(r);
  }
  return out;
}

/**
 * The configuration errors of shared listen addresses, each naming the address and entries: two plain routes on
 * one address (without names), more than one default route, `sni` and `host` on the same address, the same name
 * twice, and a wildcard listed before a name it covers. Routes are matched most specific first whatever their
 * order (name-table.ts); refusing the last case keeps a top-to-bottom (first match) reading of the list true too.
 */
export function sharedAddressErrors(routes: readonly RouteConfig[], labels: readonly string[]): string[] {
  const errors: string[] = [];
  const label = (r: RouteConfig) => labels[routes.indexOf(r)] ?? "entry";
  for (const group of groupByAddress(routes)) {
    if (group.length < 2) continue;
    const where = formatHostPort((group[0] as RouteConfig).listen);
    const named = group.filter((r) => r.match !== null);
    const defaults = group.filter((r) => r.match === null);
    if (named.length === 0) {
      for (const r of group.slice(1)) errors.push(`${label(r)}: listen address ${where} is used by another route`);
      continue;
    }
    if (defaults.length > 1) {
      errors.push(`${where}: ${defaults.map(label).join(" and ")} are both default routes (no sni=/host=); keep one`);
    }
    const kinds = new Set(named.map((r) => (r.match as RouteMatch).kind));
    if (kinds.size > 1) errors.push(`${where}: sni= and host= routes cannot share a listen address (TLS or HTTP, not both)`);
    errors.push(...nameErrors(named, where, label));
  }
  return errors;
}

function nameErrors(named: RouteConfig[], where: string, label: (r: RouteConfig) => string): string[] {
  const errors: string[] = [];
  named.forEach((r, i) => {
    const m = r.match as RouteMatch;
    for (const earlier of named.slice(0, i)) {
      const e = earlier.match as RouteMatch;
      if (e.name === m.name) errors.push(`${where}: ${label(r)} repeats ${matchText(m)} of ${label(earlier)}`);
      else if (covers(e.name, m.name)) {
        errors.push(`${where}: ${matchText(e)} (${label(earlier)}) is listed before ${matchText(m)} (${label(r)}), ` +
          "which it covers; list the more specific name first");
      }
    }
  });
  return errors;
}

/** True when wildcard `pattern` matches every name `other` matches (`*.a.b` covers `x.a.b` and `*.x.a.b`). */
function covers(pattern: string, other: string): boolean {
  if (!pattern.startsWith("*.")) return false;
  const suffix = pattern.slice(1);
  const name = other.startsWith("*.") ? other.slice(1) : other;
  return name.endsWith(suffix) && name.length > suffix.length;
}
