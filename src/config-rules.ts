/** Cross-variable rules (errors) and advisory warnings for a loaded config. Pure. */
import * as v from "valibot";
import type { Config, HostPort, Mode } from "./config-types.ts";
import { SPECS, type Values, type VarName } from "./config-vars.ts";

/** A rule spanning several variables; checked only when none of `vars` failed on its own. */
export interface CrossRule {
  /** The variables the rule reads. */
  readonly vars: readonly VarName[];
  /** True when the values satisfy the rule. */
  readonly ok: (x: Values) => boolean;
  /** The error, naming the variables involved; never a secret value. */
  readonly message: (x: Values) => string;
}

/** Credential policy the agent uses: explicit, else token when a credential is set, else none. */
export function effectivePolicy(x: Values) {
  return x.TUNNEL_CREDENTIAL_POLICY ?? (x.TUNNEL_CREDENTIAL !== undefined ? "token" : "none");
}

const COMMON_RULES: readonly CrossRule[] = [
  {
    vars: ["TUNNEL_HEARTBEAT_INTERVAL_MS", "TUNNEL_HEARTBEAT_TIMEOUT_MS"],
    ok: (x) => (x.TUNNEL_HEARTBEAT_TIMEOUT_MS ?? 0) > (x.TUNNEL_HEARTBEAT_INTERVAL_MS ?? 0),
    message: (x) =>
      `TUNNEL_HEARTBEAT_TIMEOUT_MS (${x.TUNNEL_HEARTBEAT_TIMEOUT_MS}) must be greater than ` +
      `TUNNEL_HEARTBEAT_INTERVAL_MS (${x.TUNNEL_HEARTBEAT_INTERVAL_MS})`,
  },
];

const SERVER_RULES: readonly CrossRule[] = [
  {
    vars: ["TUNNEL_WS_TLS", "TUNNEL_TLS"],
    ok: (x) => x.TUNNEL_WS_TLS !== true || x.TUNNEL_TLS === true,
    message: () => "TUNNEL_WS_TLS=on needs TUNNEL_TLS=on (the WebSocket listener serves the same certificate)",
  },
  {
    vars: ["TUNNEL_TLS", "TUNNEL_TLS_CERT", "TUNNEL_TLS_KEY"],
    ok: (x) => !x.TUNNEL_TLS || (x.TUNNEL_TLS_CERT === undefined) === (x.TUNNEL_TLS_KEY === undefined),
    message: () =>
      "TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together: set both, or neither for a self-signed identity in TUNNEL_STATE_DIR",
  },
  {
    vars: ["TUNNEL_CLUSTERS", "TUNNEL_TLS", "TUNNEL_TLS_CLIENT_CA"],
    ok: (x) => mtlsClusters(x).length === 0 || (x.TUNNEL_TLS === true && x.TUNNEL_TLS_CLIENT_CA !== undefined),
    message: (x) =>
      `TUNNEL_CLUSTERS: policy mtls (cluster ${mtlsClusters(x).map((n) => `"${n}"`).join(", ")}) ` +
      "needs TUNNEL_TLS=on and TUNNEL_TLS_CLIENT_CA",
  },
  {
    vars: ["TUNNEL_AUTH_PENALTY_MS", "TUNNEL_AUTH_PENALTY_MAX_MS"],
    ok: (x) => (x.TUNNEL_AUTH_PENALTY_MAX_MS ?? 0) >= (x.TUNNEL_AUTH_PENALTY_MS ?? 0),
    message: (x) =>
      `TUNNEL_AUTH_PENALTY_MAX_MS (${x.TUNNEL_AUTH_PENALTY_MAX_MS}) must be at least ` +
      `TUNNEL_AUTH_PENALTY_MS (${x.TUNNEL_AUTH_PENALTY_MS})`,
  },
  {
    vars: ["TUNNEL_ROUTES", "TUNNEL_CLUSTERS"],
    ok: (x) => unknownRouteClusters(x).length === 0,
    message: (x) =>
      `TUNNEL_ROUTES: cluster ${unknownRouteClusters(x).map((n) => `"${n}"`).join(", ")} ` +
      "is not in TUNNEL_CLUSTERS",
  },
];

const AGENT_RULES: readonly CrossRule[] = [
  {
    vars: ["TUNNEL_SERVERS", "TUNNEL_TLS"],
    ok: (x) => (x.TUNNEL_SERVERS ?? []).every((s) => s.ws === undefined || s.ws.tls === x.TUNNEL_TLS),
    message: (x) =>
      x.TUNNEL_TLS
        ? "TUNNEL_SERVERS: a ws:// entry would send the tunnel in plaintext; use wss://, or set TUNNEL_TLS=off to allow plaintext"
        : "TUNNEL_SERVERS: a wss:// entry needs TUNNEL_TLS=on (with TUNNEL_TLS=off use ws://)",
  },
  {
    vars: ["TUNNEL_SERVERS", "TUNNEL_SERVER_DISCOVERY"],
    ok: (x) => x.TUNNEL_SERVERS !== undefined || x.TUNNEL_SERVER_DISCOVERY !== undefined,
    message: () =>
      "TUNNEL_SERVERS: required (host:port,…) unless TUNNEL_SERVER_DISCOVERY is set (dns:name:port or file:path)",
  },
  {
    vars: ["TUNNEL_RECONNECT_BASE_MS", "TUNNEL_RECONNECT_MAX_MS"],
    ok: (x) => (x.TUNNEL_RECONNECT_MAX_MS ?? 0) >= (x.TUNNEL_RECONNECT_BASE_MS ?? 0),
    message: (x) =>
      `TUNNEL_RECONNECT_MAX_MS (${x.TUNNEL_RECONNECT_MAX_MS}) must be at least ` +
      `TUNNEL_RECONNECT_BASE_MS (${x.TUNNEL_RECONNECT_BASE_MS})`,
  },
  {
    vars: ["TUNNEL_CREDENTIAL_POLICY", "TUNNEL_CREDENTIAL"],
    ok: (x) => !["token", "hmac-sha256"].includes(effectivePolicy(x)) || x.TUNNEL_CREDENTIAL !== undefined,
    message: (x) => `TUNNEL_CREDENTIAL: required by TUNNEL_CREDENTIAL_POLICY=${effectivePolicy(x)}`,
  },
  {
    vars: ["TUNNEL_CREDENTIAL_POLICY", "TUNNEL_CREDENTIAL", "TUNNEL_TLS", "TUNNEL_TLS_CERT", "TUNNEL_TLS_KEY"],
    ok: (x) =>
      effectivePolicy(x) !== "mtls" ||
      (x.TUNNEL_TLS === true && x.TUNNEL_TLS_CERT !== undefined && x.TUNNEL_TLS_KEY !== undefined),
    message: () =>
      "TUNNEL_CREDENTIAL_POLICY=mtls needs TUNNEL_TLS=on, TUNNEL_TLS_CERT and TUNNEL_TLS_KEY (the client certificate)",
  },
  {
    vars: ["TUNNEL_TLS_CERT", "TUNNEL_TLS_KEY"],
    ok: (x) => (x.TUNNEL_TLS_CERT === undefined) === (x.TUNNEL_TLS_KEY === undefined),
    message: () => "TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together: set both or neither",
  },
  {
    vars: ["TUNNEL_PROTOCOL", "TUNNEL_SERVICES"],
    ok: (x) => x.TUNNEL_PROTOCOL !== "mosn" || (x.TUNNEL_SERVICES?.length === 1 && x.TUNNEL_SERVICES[0]?.proxyProtocol === null),
    message: (x) =>
      `TUNNEL_SERVICES: TUNNEL_PROTOCOL=mosn splices each connection to one service (MOSN's hosting listener): ` +
      `name exactly one, without proxy= (the server tells no visitor address); got ${x.TUNNEL_SERVICES?.length ?? 0}` +
      `${x.TUNNEL_SERVICES?.some((s) => s.proxyProtocol !== null) ? " with proxy=" : ""}`,
  },
  {
    vars: ["TUNNEL_PROTOCOL", "TUNNEL_SERVERS", "TUNNEL_PROXY"],
    ok: (x) =>
      x.TUNNEL_PROTOCOL !== "mosn" ||
      (x.TUNNEL_PROXY === undefined && !(x.TUNNEL_SERVERS ?? []).some((s) => s.ws !== undefined) && x.TUNNEL_SERVICES?.[0]?.protocol !== "udp"),
    message: () =>
      "TUNNEL_PROTOCOL=mosn dials MOSN servers directly over TCP or TLS: no ws:// or wss:// in TUNNEL_SERVERS, no " +
      "TUNNEL_PROXY, and a TCP service (not /udp)",
  },
  {
    vars: ["TUNNEL_TLS_PIN", "TUNNEL_TLS_CA"],
    ok: (x) => x.TUNNEL_TLS_PIN === undefined || x.TUNNEL_TLS_CA === undefined,
    message: () => "TUNNEL_TLS_PIN and TUNNEL_TLS_CA: set one (a pin replaces CA verification)",
  },
];

function mtlsClusters(x: Values): string[] {
  return (x.TUNNEL_CLUSTERS ?? []).filter((c) => c.policy === "mtls").map((c) => c.name);
}

function unknownRouteClusters(x: Values): string[] {
  const known = new Set((x.TUNNEL_CLUSTERS ?? []).map((c) => c.name));
  return [...new Set((x.TUNNEL_ROUTES ?? []).map((r) => r.cluster).filter((c) => !known.has(c)))];
}

/** The rules for `mode`. */
export function rulesFor(mode: Mode): readonly CrossRule[] {
  return [...COMMON_RULES, ...(mode === "server" ? SERVER_RULES : AGENT_RULES)];
}

/**
 * The rules as one valibot action for the end of a mode's object pipe. Unlike v.check it also runs when some
 * variables failed, so every problem is reported at once; a rule is skipped only if one of its own vars failed.
 */
export function crossCheck(rules: readonly CrossRule[]) {
  return v.rawCheck<Values>(({ dataset, addIssue }) => {
    const failed = new Set(dataset.issues?.map((issue) => issue.path?.[0]?.key));
    const x = dataset.value as Values; // partially typed: a rule reads only its own vars, which did not fail
    for (const rule of rules) {
      if (rule.vars.some((name) => failed.has(name))) continue;
      if (!rule.ok(x)) addIssue({ message: rule.message(x) });
    }
  });
}

function isLoopback(a: HostPort): boolean {
  return a.host === "localhost" || a.host === "::1" || a.host.startsWith("127.");
}

/** Advisory warnings for a valid config: settings that are legal but probably not what was meant. */
export function configWarnings(c: Config): string[] {
  const warnings: string[] = [];
  const tlsFiles: VarName[] = ["TUNNEL_TLS_CA", "TUNNEL_TLS_CERT", "TUNNEL_TLS_KEY"];
  const files: unknown[] = [c.tlsCa, c.tlsCert, c.tlsKey];
  if (c.mode === "server") {
    tlsFiles.push("TUNNEL_TLS_CLIENT_CA");
    files.push(c.tlsClientCa);
  } else {
    tlsFiles.push("TUNNEL_TLS_PIN");
    files.push(c.tlsPins.length > 0 ? c.tlsPins : null);
  }
  const ignored = tlsFiles.filter((_, i) => files[i] !== null);
  if (!c.tls && ignored.length > 0) warnings.push(`TUNNEL_TLS=off: ${ignored.join(", ")} ignored`);
  if (c.adminToken !== null && c.adminListen === null) {
    warnings.push("TUNNEL_ADMIN_TOKEN is set but TUNNEL_ADMIN_LISTEN is not: the admin endpoint is off");
  }
  if (c.adminListen !== null && c.adminToken === null && !isLoopback(c.adminListen)) {
    warnings.push("TUNNEL_ADMIN_LISTEN is not a loopback address and TUNNEL_ADMIN_TOKEN is unset: " +
      "anyone who reaches it can use the admin endpoint");
  }
  if (c.mode === "server") {
    for (const cl of c.clusters.filter((cl) => cl.policy === "none")) {
      warnings.push(`TUNNEL_CLUSTERS: cluster "${cl.name}" has policy none: any agent that reaches ` +
        "TUNNEL_LISTEN may join it");
    }
  } else if (c.credential !== null && (c.credentialPolicy === "none" || c.credentialPolicy === "mtls")) {
    warnings.push(`TUNNEL_CREDENTIAL is set but TUNNEL_CREDENTIAL_POLICY=${c.credentialPolicy}: it is not sent`);
  }
  return warnings;
}

/** Levenshtein distance (small strings only). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** Warnings for TUNNEL_* names that are unknown (with the closest known name) or belong to the other mode. */
export function nameWarnings(names: readonly string[], mode: Mode | null): string[] {
  const known = Object.keys(SPECS);
  const warnings: string[] = [];
  for (const name of names) {
    const spec = Object.hasOwn(SPECS, name) ? SPECS[name as VarName] : undefined;
    if (spec) {
      if (mode !== null && !spec.modes.includes(mode)) {
        warnings.push(`${name} is a ${spec.modes.join("/")} variable; ignored in ${mode} mode`);
      }
      continue;
    }
    const [best, d] = known
      .map((k) => [k, distance(name, k)] as const)
      .reduce((a, b) => (b[1] < a[1] ? b : a), ["", Infinity] as const);
    const hint = d <= Math.max(3, Math.floor(name.length / 4)) ? `; did you mean ${best}?` : " (see --help)";
    warnings.push(`unknown variable ${name} is ignored${hint}`);
  }
  return warnings;
}
