/**
 * Configuration: the environment → a typed, validated {@link Config}. The only module that reads TUNNEL_*
 * variables (main passes `process.env`). The variable table lives in config-vars.ts, value parsers in
 * config-parse.ts, cross-variable rules and warnings in config-rules.ts, the types in config-types.ts (re-exported
 * here).
 */
import * as v from "valibot";
import { hostname as osHostname } from "node:os";
import { SPECS, VARIABLES, type Values, type VarName } from "./config-vars.ts";
import type { VarSpec } from "./config-spec.ts";
import { configWarnings, crossCheck, effectivePolicy, nameWarnings, rulesFor } from "./config-rules.ts";
import { TunnelError } from "./errors.ts";
import type { AgentConfig, CommonConfig, Config, Mode, ProxyConfig, ServerConfig } from "./config-types.ts";
import { parseNoProxy, parseProxyUrl } from "./config-net.ts";

export { VARIABLES } from "./config-vars.ts";
export type { VariableDoc } from "./config-spec.ts";
export type {
  AgentConfig,
  ClusterConfig,
  CommonConfig,
  Config,
  CredentialPolicy,
  HostPort,
  LogLevel,
  Mode,
  Protocol,
  ProxyConfig,
  ServerAddress,
  WsEndpoint,
  RouteConfig,
  RouteMatch,
  ServerConfig,
  ServerDiscovery,
  ServiceConfig,
} from "./config-types.ts";

/** loadConfig's result: a config, or every error at once. Warnings either way. No message contains a secret. */
export type LoadResult =
  | { ok: true; config: Config; warnings: string[] }
  | { ok: false; error: TunnelError; errors: string[]; warnings: string[] };

const MODES: readonly Mode[] = ["server", "agent"];

/** The object schema for a mode (or the common part, when the mode itself is bad): one entry per variable. */
function schemaFor(mode: Mode | null) {
  const entries: v.ObjectEntries = {};
  for (const [name, spec] of Object.entries(SPECS) as [VarName, VarSpec][]) {
    if (name === "TUNNEL_MODE" || !spec.modes.includes(mode ?? "server") || (mode === null && spec.modes.length < 2)) {
      continue;
    }
    entries[name] = spec.required ? spec.schema : v.optional(spec.schema, spec.fallback);
  }
  const object = v.object(entries) as unknown as v.GenericSchema<Record<string, string>, Values>;
  return v.pipe(object, crossCheck(mode === null ? [] : rulesFor(mode)));
}

const SCHEMAS = { server: schemaFor("server"), agent: schemaFor("agent"), none: schemaFor(null) };

/**
 * Loads the config for `mode` (argv's `--mode`, which wins) or `TUNNEL_MODE` from `env`. Pure: reads only `env`,
 * plus `opts` (`isTTY` picks the default log format; `hostname` the default TUNNEL_HOSTNAME, else os.hostname()).
 * Blank variables count as unset. On failure, `errors` has one line per problem, each naming its variable.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  mode?: string,
  opts: { isTTY?: boolean; hostname?: string } = {},
): LoadResult {
  const input: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith("TUNNEL_") && value !== undefined && value.trim() !== "") input[name] = value;
  }
  const errors: string[] = [];
  const modeText = mode ?? input.TUNNEL_MODE;
  const parsedMode = v.safeParse(SPECS.TUNNEL_MODE.schema, modeText ?? "");
  const m = parsedMode.success ? parsedMode.output : null;
  if (modeText === undefined) errors.push("TUNNEL_MODE: required (server|agent), or pass --mode=server|agent");
  else if (m === null) errors.push(`${mode !== undefined ? "--mode" : "TUNNEL_MODE"}: expected server or agent, got ${quote(modeText)}`);

  const warnings = nameWarnings(Object.keys(input), m);
  const result = v.safeParse(SCHEMAS[m ?? "none"], input);
  for (const issue of result.issues ?? []) errors.push(formatIssue(issue, input));
  const scrub = scrubber(input);
  if (!result.success || m === null || errors.length > 0) {
    const n = errors.length;
    const error = new TunnelError("ERR_CONFIG", `invalid configuration, ${n} problem${n === 1 ? "" : "s"}`);
    return { ok: false, error, errors: errors.map(scrub), warnings: warnings.map(scrub) };
  }
  const config = assemble(m, result.output, opts);
  if (config.mode === "agent" && config.proxy === null) {
    Object.assign(config, environmentProxy(env, config.tls, warnings));
  }
  return { ok: true, config, warnings: [...warnings, ...configWarnings(config)].map(scrub) };
}

/**
 * The proxy from the environment when TUNNEL_PROXY is unset, as curl reads it: `https_proxy`, then `HTTPS_PROXY`
 * (then `http_proxy`, lower case only, for a plaintext agent), minus `no_proxy` / `NO_PROXY` (applied per server).
 * A value that is not an http:// URL is ignored with a warning (other programs may use what this one cannot).
 */
function environmentProxy(env: Record<string, string | undefined>, tls: boolean, warnings: string[]): { proxy: ProxyConfig | null; noProxy: string[] } {
  const names = tls ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy"];
  const name = names.find((n) => (env[n] ?? "").trim() !== "");
  const noProxy = parseNoProxy(env.no_proxy?.trim() ? env.no_proxy : (env.NO_PROXY ?? ""));
  if (name === undefined) return { proxy: null, noProxy };
  const p = parseProxyUrl(env[name] ?? "", name);
  if (typeof p !== "string") return { proxy: p, noProxy };
  warnings.push(`${name}: ignored (${p}); server connections go direct`);
  return { proxy: null, noProxy };
}

function quote(raw: string): string {
  return JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}…` : raw);
}

/** `NAME: message[, got "value"]`: the value only for non-secret single values without line breaks. */
function formatIssue(issue: v.BaseIssue<unknown>, input: Record<string, string>): string {
  const first = issue.path?.[0];
  const name = first?.key;
  if (typeof name !== "string" || !Object.hasOwn(SPECS, name)) return issue.message;
  const spec: VarSpec = SPECS[name as VarName];
  if (first?.origin === "key") return `${name}: required (${spec.syntax})`;
  const raw = input[name];
  const echo = raw !== undefined && !spec.secret && !spec.listValue && !/[\r\n]/.test(raw);
  return `${name}: ${issue.message}${echo ? `, got ${quote(raw)}` : ""}`;
}

/**
 * Belt and braces: removes every secret (credential, admin token, anything a TUNNEL_CLUSTERS entry holds after its
 * policy, or a whole entry without `=`) from a message, in case a message ever quotes one.
 */
function scrubber(input: Record<string, string>): (message: string) => string {
  const secrets = [input.TUNNEL_CREDENTIAL, input.TUNNEL_ADMIN_TOKEN, input.TUNNEL_PROXY];
  for (const entry of (input.TUNNEL_CLUSTERS ?? "").split(",")) {
    const eq = entry.indexOf("=");
    const colon = entry.indexOf(":", eq + 1);
    secrets.push(eq < 0 ? entry : colon < 0 ? undefined : entry.slice(colon + 1));
  }
  const list = secrets.map((s) => s?.trim()).filter((s): s is string => s !== undefined && s.length >= 4);
  return (message) => list.reduce((m, s) => m.split(s).join("[redacted]"), message);
}

/** Values with a fallback are always present after a successful parse. */
function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("config: a variable with a default came out undefined (bug)");
  return value;
}

function assemble(mode: Mode, x: Values, opts: { isTTY?: boolean; hostname?: string }): Config {
  const common: CommonConfig = {
    mode,
    logLevel: must(x.TUNNEL_LOG_LEVEL),
    logFormat: x.TUNNEL_LOG_FORMAT ?? (opts.isTTY ? "pretty" : "json"),
    adminListen: x.TUNNEL_ADMIN_LISTEN ?? null,
    adminToken: x.TUNNEL_ADMIN_TOKEN ?? null,
    tls: must(x.TUNNEL_TLS),
    tlsCa: x.TUNNEL_TLS_CA ?? null,
    tlsCert: x.TUNNEL_TLS_CERT ?? null,
    tlsKey: x.TUNNEL_TLS_KEY ?? null,
    tlsMinVersion: must(x.TUNNEL_TLS_MIN_VERSION),
    tlsReloadIntervalMs: must(x.TUNNEL_TLS_RELOAD_INTERVAL_MS),
    streamWindowBytes: must(x.TUNNEL_STREAM_WINDOW_BYTES),
    streamWindowMaxBytes: must(x.TUNNEL_STREAM_WINDOW_MAX_BYTES),
    inboundMaxBytesPerConnection: must(x.TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION),
    inboundMaxBytes: must(x.TUNNEL_INBOUND_MAX_BYTES),
    maxFrameBytes: must(x.TUNNEL_MAX_FRAME_BYTES),
    heartbeatIntervalMs: must(x.TUNNEL_HEARTBEAT_INTERVAL_MS),
    heartbeatTimeoutMs: must(x.TUNNEL_HEARTBEAT_TIMEOUT_MS),
    maxStreamsPerConnection: must(x.TUNNEL_MAX_STREAMS_PER_CONNECTION),
    handshakeMaxBytes: must(x.TUNNEL_HANDSHAKE_MAX_BYTES),
    controlQueueMaxBytes: must(x.TUNNEL_CONTROL_QUEUE_MAX_BYTES),
    streamIdleTimeoutMs: must(x.TUNNEL_STREAM_IDLE_TIMEOUT_MS),
    udpIdleTimeoutMs: must(x.TUNNEL_UDP_IDLE_TIMEOUT_MS),
  };
  if (mode === "server") {
    return {
      ...common,
      mode,
      listen: must(x.TUNNEL_LISTEN),
      clusters: must(x.TUNNEL_CLUSTERS),
      routes: must(x.TUNNEL_ROUTES),
      tlsClientCa: x.TUNNEL_TLS_CLIENT_CA ?? null,
      stateDir: must(x.TUNNEL_STATE_DIR),
      handshakeTimeoutMs: must(x.TUNNEL_HANDSHAKE_TIMEOUT_MS),
      maxPendingHandshakes: must(x.TUNNEL_MAX_PENDING_HANDSHAKES),
      maxPendingHandshakesPerIp: must(x.TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP),
      maxConnections: x.TUNNEL_MAX_CONNECTIONS ?? null, metricsPerAgent: must(x.TUNNEL_METRICS_PER_AGENT), reusePort: must(x.TUNNEL_REUSE_PORT),
      authFailureLimit: must(x.TUNNEL_AUTH_FAILURE_LIMIT),
      authFailureWindowMs: must(x.TUNNEL_AUTH_FAILURE_WINDOW_MS),
      authPenaltyMs: must(x.TUNNEL_AUTH_PENALTY_MS),
      authPenaltyMaxMs: must(x.TUNNEL_AUTH_PENALTY_MAX_MS),
      accessLog: must(x.TUNNEL_ACCESS_LOG),
      shutdownGraceMs: must(x.TUNNEL_SHUTDOWN_GRACE_MS),
      mosnAgents: must(x.TUNNEL_MOSN_AGENTS),
      udpMaxFlows: must(x.TUNNEL_UDP_MAX_FLOWS),
      wsListen: x.TUNNEL_WS_LISTEN ?? null,
      wsPath: must(x.TUNNEL_WS_PATH),
      wsTls: x.TUNNEL_WS_TLS ?? common.tls,
      trustedProxies: x.TUNNEL_TRUSTED_PROXIES ?? [],
    };
  }
  return {
    ...common,
    mode,
    servers: x.TUNNEL_SERVERS ?? [],
    serverDiscovery: x.TUNNEL_SERVER_DISCOVERY ?? null,
    cluster: must(x.TUNNEL_CLUSTER),
    credentialPolicy: effectivePolicy(x),
    credential: x.TUNNEL_CREDENTIAL ?? null,
    services: must(x.TUNNEL_SERVICES),
    connections: must(x.TUNNEL_CONNECTIONS),
    weight: must(x.TUNNEL_WEIGHT),
    hostname: x.TUNNEL_HOSTNAME ?? opts.hostname ?? osHostname(),
    hostnameSet: x.TUNNEL_HOSTNAME !== undefined,
    connectRetryTimes: must(x.TUNNEL_CONNECT_RETRY_TIMES),
    reconnectBaseMs: must(x.TUNNEL_RECONNECT_BASE_MS),
    reconnectMaxMs: must(x.TUNNEL_RECONNECT_MAX_MS),
    connectTimeoutMs: must(x.TUNNEL_CONNECT_TIMEOUT_MS),
    gracefulCloseMaxWaitMs: must(x.TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS),
    tlsServerName: x.TUNNEL_TLS_SERVER_NAME ?? null,
    tlsPins: x.TUNNEL_TLS_PIN ?? [],
    discoveryIntervalMs: must(x.TUNNEL_DISCOVERY_INTERVAL_MS),
    dnsServers: x.TUNNEL_DNS_SERVERS ?? [],
    protocol: must(x.TUNNEL_PROTOCOL),
    proxy: x.TUNNEL_PROXY ?? null,
    noProxy: [],
  };
}

const REDACTED = "[redacted]";

/**
 * A copy of `config` safe to print or log: adminToken, credential and every cluster secret are replaced by
 * "[redacted]" (null stays null, so "unset" remains visible). TLS paths stay: they are file names, not key material.
 */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as Config;
  if (copy.adminToken !== null) copy.adminToken = REDACTED;
  if (copy.mode === "agent" && copy.credential !== null) copy.credential = REDACTED;
  if (copy.mode === "agent" && copy.proxy?.password != null) copy.proxy.password = REDACTED;
  if (copy.mode === "server") {
    for (const cluster of copy.clusters) if (cluster.secret !== null) cluster.secret = REDACTED;
  }
  return { ...copy };
}

/** `--help` text: usage, then every variable of both modes (syntax, default, meaning), from {@link VARIABLES}. */
export function helpText(): string {
  const groups: [string, (modes: readonly Mode[]) => boolean][] = [
    ["Both modes", (ms) => ms.length === MODES.length],
    ["Server (--mode=server)", (ms) => ms.length === 1 && ms[0] === "server"],
    ["Agent (--mode=agent)", (ms) => ms.length === 1 && ms[0] === "agent"],
  ];
  const lines = [
    "Usage: backchannel --mode=server|agent   (or TUNNEL_MODE=server|agent)",
    "       backchannel --help | --version",
    "",
    "Backchannel is configured by environment variables only; a blank variable counts as unset.",
    "Invalid configuration exits with code 2 and names every bad variable.",
  ];
  for (const [title, inGroup] of groups) {
    lines.push("", `${title}:`);
    for (const doc of VARIABLES.filter((d) => inGroup(d.modes))) {
      lines.push(`  ${doc.name}=${doc.syntax}${doc.secret ? "   (secret)" : ""}`);
      lines.push(`      ${doc.meaning} Default: ${doc.default}.`);
    }
  }
  return lines.join("\n") + "\n";
}
