/**
 * The variable table: every TUNNEL_* variable once, with its modes, default, meaning and value schema. The schemas in
 * config.ts, `--help` and the README table are all generated from it, so a variable cannot be documented and not
 * parsed (or the reverse).
 */
import * as v from "valibot";
import { AGENT, BOTH, HOUR_MS, MiB, SERVER, defaulted, spec, type VariableDoc } from "./config-spec.ts";
import {
  DEFAULT_CONTROL_QUEUE_MAX_BYTES,
  DEFAULT_HANDSHAKE_MAX_BODY_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_WINDOW_BYTES,
  HANDSHAKE_MAX_BODY_LIMIT,
  MAX_MAX_FRAME_BYTES,
  MIN_MAX_FRAME_BYTES,
} from "./protocol/constants.ts";
import {
  MIN_SECRET_CHARS,
  POLICIES,
  parseClusters,
  parseDiscovery,
  parseDnsServers,
  parsePins,
  parseServices,
} from "./config-parse.ts";
import { DEFAULT_WS_PATH, parseProxy, parseServers, parseTrustedProxies, parseWsPath } from "./config-net.ts";
import { parseRoutes } from "./config-routes.ts";
import {
  boolSchema,
  enumSchema,
  hostPortSchema,
  intSchema,
  listSchema,
  nameSchema,
  pathSchema,
  secretSchema,
} from "./config-schemas.ts";

/** Every variable, keyed by name, in help order. Defaults live here and nowhere else (numeric protocol limits come from protocol/constants.ts). */
export const SPECS = {
  TUNNEL_MODE: spec({ modes: BOTH, syntax: "server|agent", default: "required (or --mode=)", required: true,
    meaning: "Role of this process; the --mode argument wins over it.", schema: enumSchema(["server", "agent"]) }),
  TUNNEL_LOG_LEVEL: spec({ modes: BOTH, syntax: "trace|debug|info|warn|error", default: "info", fallback: "info",
    meaning: "Least severe log level written.", schema: enumSchema(["trace", "debug", "info", "warn", "error"]) }),
  TUNNEL_LOG_FORMAT: spec({ modes: BOTH, syntax: "pretty|json", default: "pretty on a terminal, else json",
    meaning: "Log lines for people, or one JSON object per line.", schema: enumSchema(["pretty", "json"]) }),
  TUNNEL_ADMIN_LISTEN: spec({ modes: BOTH, syntax: "host:port or port", default: "off",
    meaning: "Address of the admin HTTP endpoint (/healthz, /readyz, /metrics, /api/status, a status page at /); " +
      "a bare port means 127.0.0.1:port.",
    schema: hostPortSchema({ allowPortZero: true, bareHost: "127.0.0.1" }) }),
  TUNNEL_ADMIN_TOKEN: spec({ modes: BOTH, syntax: `secret, ≥ ${MIN_SECRET_CHARS} chars`, default: "none",
    meaning: "Bearer token (or HTTP Basic password) the admin endpoint requires, except on /healthz and /readyz.",
    secret: true, schema: secretSchema(MIN_SECRET_CHARS) }),
  TUNNEL_TLS: spec({ modes: BOTH, syntax: "on|off", default: "on", fallback: "on",
    meaning: "TLS between agent and server; off sends tunnel traffic in plaintext.", schema: boolSchema() }),
  TUNNEL_TLS_CA: spec({ modes: BOTH, syntax: "PEM file path", default: "system roots",
    meaning: "CA bundle the agent uses to verify the server certificate (not with TUNNEL_TLS_PIN).",
    schema: pathSchema() }),
  TUNNEL_TLS_CERT: spec({ modes: BOTH, syntax: "PEM file path",
    default: "server: a self-signed identity in TUNNEL_STATE_DIR; agent: none",
    meaning: "Certificate chain: the server's, or the agent's client certificate.", schema: pathSchema() }),
  TUNNEL_TLS_KEY: spec({ modes: BOTH, syntax: "PEM file path", default: "none",
    meaning: "Private key for TUNNEL_TLS_CERT; set both or neither.", schema: pathSchema() }),
  TUNNEL_TLS_MIN_VERSION: spec({ modes: BOTH, syntax: "1.2|1.3", default: "1.2", fallback: "1.2",
    meaning: "Oldest TLS version accepted; handshakes below it are refused (and logged with the reason).",
    schema: enumSchema(["1.2", "1.3"]) }),
  TUNNEL_TLS_RELOAD_INTERVAL_MS: spec({ modes: BOTH, syntax: `0..${HOUR_MS}`, default: "10000", fallback: "10000",
    meaning: "How often the TLS files (TUNNEL_TLS_CERT, _KEY, _CA, _CLIENT_CA) are checked for changes; new " +
      "connections use changed files once they are unchanged for one more interval; 0 turns reloading off.",
    schema: intSchema(0, HOUR_MS) }),
  TUNNEL_STREAM_WINDOW_BYTES: spec({ modes: BOTH, syntax: "65536..16777216", ...defaulted(DEFAULT_WINDOW_BYTES),
    meaning: "Per-stream receive window granted to the peer (an agent grants 64 KiB until the stream's target is " +
      "connected, then this).", schema: intSchema(65_536, 16_777_216) }),
  TUNNEL_STREAM_WINDOW_MAX_BYTES: spec({ modes: BOTH, syntax: "65536..1073741824", ...defaulted(16 * MiB),
    meaning: "Largest a stream's receive window grows to while the stream is limited by its window (it aims at " +
      "the round trip × rate plus a few ms, within the inbound budgets, and falls back after idling); at or below " +
      "TUNNEL_STREAM_WINDOW_BYTES, windows stay fixed.", schema: intSchema(65_536, 1_073_741_824) }),
  TUNNEL_MAX_FRAME_BYTES: spec({ modes: BOTH, syntax: `${MIN_MAX_FRAME_BYTES}..${MAX_MAX_FRAME_BYTES}`,
    ...defaulted(DEFAULT_MAX_FRAME_BYTES), meaning: "Largest DATA frame payload accepted from the peer.",
    schema: intSchema(MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES) }),
  TUNNEL_HEARTBEAT_INTERVAL_MS: spec({ modes: BOTH, syntax: `1..${HOUR_MS}`, default: "5000", fallback: "5000",
    meaning: "Interval between PINGs on each connection.", schema: intSchema(1, HOUR_MS) }),
  TUNNEL_HEARTBEAT_TIMEOUT_MS: spec({ modes: BOTH, syntax: `1..${HOUR_MS}`, default: "15000", fallback: "15000",
    meaning: "A connection silent this long is closed; must exceed the heartbeat interval.",
    schema: intSchema(1, HOUR_MS) }),
  TUNNEL_MAX_STREAMS_PER_CONNECTION: spec({ modes: BOTH, syntax: "1..1048576", default: "4096", fallback: "4096",
    meaning: "Concurrent streams allowed on one connection.", schema: intSchema(1, 1_048_576) }),
  TUNNEL_HANDSHAKE_MAX_BYTES: spec({ modes: BOTH, syntax: `256..${HANDSHAKE_MAX_BODY_LIMIT}`,
    ...defaulted(DEFAULT_HANDSHAKE_MAX_BODY_BYTES), meaning: "Largest handshake JSON body accepted.",
    schema: intSchema(256, HANDSHAKE_MAX_BODY_LIMIT) }),
  TUNNEL_CONTROL_QUEUE_MAX_BYTES: spec({ modes: BOTH, syntax: "1024..1073741824",
    ...defaulted(DEFAULT_CONTROL_QUEUE_MAX_BYTES), meaning: "Replies (PONGs, refusals) a peer may make a connection queue while it does not " +
      "read; past this it is disconnected (ENHANCE_YOUR_CALM).", schema: intSchema(1024, 1_073_741_824) }),
  TUNNEL_STREAM_IDLE_TIMEOUT_MS: spec({ modes: BOTH, syntax: "0..86400000", default: "0 (off)", fallback: "0",
    meaning: "A stream that moves no byte either way for this long is reset (IDLE_TIMEOUT); 0 never.",
    schema: intSchema(0, 86_400_000) }),
  TUNNEL_UDP_IDLE_TIMEOUT_MS: spec({ modes: BOTH, syntax: "1000..86400000", default: "60000", fallback: "60000",
    meaning: "A UDP flow (one visitor address on a /udp route) with no datagram either way for this long is closed " +
      "on this side (its socket and stream).",
    schema: intSchema(1000, 86_400_000) }),

  TUNNEL_LISTEN: spec({ modes: SERVER, syntax: "host:port", default: "0.0.0.0:7000", fallback: "0.0.0.0:7000",
    meaning: "Address agents connect to (port 0: any free port).", schema: hostPortSchema({ allowPortZero: true }) }),
  TUNNEL_CLUSTERS: spec({ modes: SERVER, syntax: "name=policy[:secret],…", default: "required", required: true,
    secret: true, listValue: true,
    meaning: "Clusters agents may join. policy: token or hmac-sha256 (secret ≥ 16 chars), mtls (optional " +
      "|-separated allowed certificate identities, default the cluster name), none.",
    schema: listSchema(parseClusters) }),
  TUNNEL_ROUTES: spec({ modes: SERVER, syntax: "listen-host:port[/udp]=cluster/service[;sni=NAME|;host=NAME],…",
    default: "none", fallback: "", listValue: true,
    meaning: "Public listeners: each carries visitors to a service of a cluster's agents. Routes may share a listen " +
      "address by name: sni= (TLS server name) or host= (HTTP Host), exact or *.wildcard; the one without is the default. " +
      "/udp: a UDP route (each visitor address a flow; no names), for a /udp service.",
    schema: listSchema(parseRoutes) }),
  TUNNEL_UDP_MAX_FLOWS: spec({ modes: SERVER, syntax: "1..1048576", default: "4096", fallback: "4096",
    meaning: "Open flows per UDP route; datagrams from further visitor addresses are dropped (and counted) until one closes.",
    schema: intSchema(1, 1_048_576) }),
  TUNNEL_TLS_CLIENT_CA: spec({ modes: SERVER, syntax: "PEM file path", default: "none",
    meaning: "CA that signs agents' client certificates; required by mtls clusters.", schema: pathSchema() }),
  TUNNEL_STATE_DIR: spec({ modes: SERVER, syntax: "directory path", default: "./backchannel-state",
    fallback: "./backchannel-state",
    meaning: "Where the server keeps state it creates: with TLS on and no TUNNEL_TLS_CERT, its self-signed TLS " +
      "identity (made once, reused; directory 0700, key 0600).", schema: pathSchema() }),
  TUNNEL_HANDSHAKE_TIMEOUT_MS: spec({ modes: SERVER, syntax: "1..600000", default: "5000", fallback: "5000",
    meaning: "An agent connection must finish its handshake within this time, and a visitor on an sni=/host= route " +
      "its TLS ClientHello or HTTP request head.", schema: intSchema(1, 600_000) }),
  TUNNEL_MAX_PENDING_HANDSHAKES: spec({ modes: SERVER, syntax: "1..1000000", default: "16384", fallback: "16384",
    meaning: "Most connections mid-handshake at once. Below it all are admitted while handshakes are answered within " +
      "half of TUNNEL_HANDSHAKE_TIMEOUT_MS; once they are not (or the event loop lags), only what the measured rate " +
      "answers in that time; the others get SERVER_BUSY with retry times spread over the expected drain.",
    schema: intSchema(1, 1_000_000) }),
  TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP: spec({ modes: SERVER, syntax: "1..1000000", default: "1024", fallback: "1024",
    meaning: "The same per remote IP address, applied while slots are scarce (overloaded, or half of " +
      "TUNNEL_MAX_PENDING_HANDSHAKES taken), so one address cannot take every slot.",
    schema: intSchema(1, 1_000_000) }),
  TUNNEL_MAX_CONNECTIONS: spec({ modes: SERVER, syntax: "1..10000000",
    default: "90% of the open-file limit (RLIMIT_NOFILE) less 64; no cap where the limit cannot be read",
    meaning: "Open agent and visitor connections at most; past it new ones are closed at once and counted " +
      "(limit_hits_total{limit=\"connections\"}), so the process never runs out of descriptors.",
    schema: intSchema(1, 10_000_000) }),
  TUNNEL_REUSE_PORT: spec({ modes: SERVER, syntax: "on|off", default: "off", fallback: "off",
    meaning: "Bind the TCP listeners (TUNNEL_LISTEN, TUNNEL_WS_LISTEN, TCP routes) with SO_REUSEPORT, so a replacement " +
      "process can bind them while this one drains (a rolling restart on one host); the kernel spreads new connections over both.",
    schema: boolSchema() }),
  TUNNEL_METRICS_PER_AGENT: spec({ modes: SERVER, syntax: "on|off", default: "off", fallback: "off",
    meaning: "Also label /metrics series by agent (host name): connections, streams, bytes and round trips; off, they " +
      "are per cluster and route only, so /metrics stays small with thousands of agents.", schema: boolSchema() }),
  TUNNEL_AUTH_FAILURE_LIMIT: spec({ modes: SERVER, syntax: "0..1000000", default: "5", fallback: "5",
    meaning: "Failed authentications (statuses 2, 3, 4, refused client certificates) from one IPv4 address " +
      "(or IPv6 /64) within TUNNEL_AUTH_FAILURE_WINDOW_MS that start a penalty; 0 turns penalties off.", schema: intSchema(0, 1_000_000) }),
  TUNNEL_AUTH_FAILURE_WINDOW_MS: spec({ modes: SERVER, syntax: "1..86400000", default: "60000", fallback: "60000",
    meaning: "Window in which failed authentications are counted.", schema: intSchema(1, 86_400_000) }),
  TUNNEL_AUTH_PENALTY_MS: spec({ modes: SERVER, syntax: "1..86400000", default: "5000", fallback: "5000",
    meaning: "A penalised IP address's new connections are refused this long; each further penalty doubles it.",
    schema: intSchema(1, 86_400_000) }),
  TUNNEL_AUTH_PENALTY_MAX_MS: spec({ modes: SERVER, syntax: "1..86400000", default: "600000", fallback: "600000",
    meaning: "Longest penalty; at least TUNNEL_AUTH_PENALTY_MS.", schema: intSchema(1, 86_400_000) }),
  TUNNEL_ACCESS_LOG: spec({ modes: SERVER, syntax: "on|off", default: "on", fallback: "on",
    meaning: "Log one line per visitor stream when it ends.", schema: boolSchema() }),
  TUNNEL_MOSN_AGENTS: spec({ modes: SERVER, syntax: "on|off", default: "off", fallback: "off",
    meaning: "Also accept plain MOSN tunnel agents (an InitInfo without extra.backchannel): each of their connections " +
      "becomes a raw host of its cluster that carries one visitor at a time, byte for byte.", schema: boolSchema() }),
  TUNNEL_SHUTDOWN_GRACE_MS: spec({ modes: SERVER, syntax: `0..${HOUR_MS}`, default: "15000", fallback: "15000",
    meaning: "On SIGTERM, how long in-flight streams may take to finish before the server exits.",
    schema: intSchema(0, HOUR_MS) }),
  TUNNEL_WS_LISTEN: spec({ modes: SERVER, syntax: "host:port", default: "off",
    meaning: "Also accept agents over WebSocket on this address (beside TUNNEL_LISTEN; port 0: any free port), for " +
      "agents behind HTTP reverse proxies or that may only speak HTTPS.", schema: hostPortSchema({ allowPortZero: true }) }),
  TUNNEL_WS_PATH: spec({ modes: SERVER, syntax: "/path", default: DEFAULT_WS_PATH, fallback: DEFAULT_WS_PATH,
    meaning: "The one URL path TUNNEL_WS_LISTEN upgrades; any other request gets a 404.", schema: listSchema(parseWsPath) }),
  TUNNEL_WS_TLS: spec({ modes: SERVER, syntax: "on|off", default: "as TUNNEL_TLS",
    meaning: "TLS on TUNNEL_WS_LISTEN; off behind a reverse proxy that terminates TLS (wss://) itself.",
    schema: boolSchema() }),
  TUNNEL_TRUSTED_PROXIES: spec({ modes: SERVER, syntax: "CIDR,…", default: "none", listValue: true,
    meaning: "Reverse proxies in front of TUNNEL_WS_LISTEN whose X-Forwarded-For / Forwarded give the agent's address " +
      "(for penalties, pending-handshake limits, logs and status); from any other peer these fields are ignored.",
    schema: listSchema(parseTrustedProxies) }),

  TUNNEL_SERVERS: spec({ modes: AGENT, syntax: "host:port or wss://host[:port][/path] or ws://…,…", default: "none",
    listValue: true,
    meaning: "Servers to connect to (wss:// and ws://: over WebSocket, path default /backchannel; wss:// needs " +
      "TUNNEL_TLS=on, ws:// TUNNEL_TLS=off); this or TUNNEL_SERVER_DISCOVERY is required.",
    schema: listSchema(parseServers) }),
  TUNNEL_SERVER_DISCOVERY: spec({ modes: AGENT, syntax: "dns:name:port or file:path", default: "none",
    meaning: "Find servers by DNS name (every address) or in a file of host:port lines.",
    schema: listSchema(parseDiscovery) }),
  TUNNEL_DISCOVERY_INTERVAL_MS: spec({ modes: AGENT, syntax: `100..${HOUR_MS}`, default: "30000", fallback: "30000",
    meaning: "How often TUNNEL_SERVER_DISCOVERY is re-resolved (a file is also watched for changes).",
    schema: intSchema(100, HOUR_MS) }),
  TUNNEL_DNS_SERVERS: spec({ modes: AGENT, syntax: "ip[:port],…", default: "the system's",
    meaning: "DNS servers for dns: discovery instead of the system's resolvers.", listValue: true,
    schema: listSchema(parseDnsServers) }),
  TUNNEL_CLUSTER: spec({ modes: AGENT, syntax: "name", default: "required", required: true,
    meaning: "Cluster this agent joins on every server.", schema: nameSchema() }),
  TUNNEL_CREDENTIAL_POLICY: spec({ modes: AGENT, syntax: POLICIES.join("|"),
    default: "token if TUNNEL_CREDENTIAL is set, else none",
    meaning: "How the agent proves its identity; must match the cluster's policy on the server.",
    schema: enumSchema(POLICIES) }),
  TUNNEL_CREDENTIAL: spec({ modes: AGENT, syntax: `secret, ≥ ${MIN_SECRET_CHARS} chars`, default: "none",
    secret: true, meaning: "The cluster secret (token and hmac-sha256 policies).",
    schema: secretSchema(MIN_SECRET_CHARS) }),
  TUNNEL_SERVICES: spec({ modes: AGENT, syntax: "name=host:port[/udp][;proxy=v1|v2],…", default: "required",
    required: true, listValue: true,
    meaning: "The only targets the agent dials, by service name; proxy= sends a PROXY protocol header (TCP only); " +
      "/udp: a UDP service, for /udp routes only.",
    schema: listSchema(parseServices) }),
  TUNNEL_PROTOCOL: spec({ modes: AGENT, syntax: "backchannel|mosn", default: "backchannel", fallback: "backchannel",
    meaning: "mosn joins a MOSN tunnel server as a MOSN agent does: each connection, after its handshake, is spliced " +
      "to a new connection to the one service of TUNNEL_SERVICES, and redialled when either side closes.",
    schema: enumSchema(["backchannel", "mosn"]) }),
  TUNNEL_CONNECTIONS: spec({ modes: AGENT, syntax: "1..64", default: "2", fallback: "2",
    meaning: "Data connections kept to each server.", schema: intSchema(1, 64) }),
  TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION: spec({ modes: BOTH, syntax: "65536..1099511627776", ...defaulted(64 * MiB),
    meaning: "Peer bytes one connection may hold for local sockets, plus how far its streams' windows grew above " +
      "TUNNEL_STREAM_WINDOW_BYTES (an agent's stream whose target is not connected yet counts 64 KiB): windows grow " +
      "only within it; past it an agent refuses new streams (REFUSED_STREAM, retried elsewhere).",
    schema: intSchema(65_536, 1_099_511_627_776) }),
  TUNNEL_INBOUND_MAX_BYTES: spec({ modes: BOTH, syntax: "65536..1099511627776", ...defaulted(256 * MiB),
    meaning: "The same budget for the whole process, over all connections.", schema: intSchema(65_536, 1_099_511_627_776) }),
  TUNNEL_WEIGHT: spec({ modes: AGENT, syntax: "1..100", default: "10", fallback: "10",
    meaning: "Load-balancing weight the server gives this agent.", schema: intSchema(1, 100) }),
  TUNNEL_HOSTNAME: spec({ modes: AGENT, syntax: "printable, no spaces",
    default: "the machine's host name; with mtls the client certificate's CN",
    meaning: "Stable name the agent reports to servers; with mtls it must be the certificate's CN or one of its DNS names.",
    schema: v.pipe(v.string(), v.trim(), v.regex(/^[\x21-\x7e]{1,255}$/, "expected 1..255 printable characters")) }),
  TUNNEL_CONNECT_RETRY_TIMES: spec({ modes: AGENT, syntax: "-1 or 0..1000000000", default: "-1", fallback: "-1",
    meaning: "Dial+handshake attempts per (re)connect before giving up on a server; -1 retries forever.",
    schema: intSchema(-1, 1_000_000_000, "expected -1 (forever) or an integer 0..1000000000") }),
  TUNNEL_RECONNECT_BASE_MS: spec({ modes: AGENT, syntax: `1..${HOUR_MS}`, default: "1000", fallback: "1000",
    meaning: "First reconnect backoff; doubles (with jitter) up to the maximum.", schema: intSchema(1, HOUR_MS) }),
  TUNNEL_RECONNECT_MAX_MS: spec({ modes: AGENT, syntax: `1..${HOUR_MS}`, default: "30000", fallback: "30000",
    meaning: "Largest reconnect backoff; at least the base.", schema: intSchema(1, HOUR_MS) }),
  TUNNEL_CONNECT_TIMEOUT_MS: spec({ modes: AGENT, syntax: "1..600000", default: "15000", fallback: "15000",
    meaning: "Deadline for dialing a server and completing the handshake.", schema: intSchema(1, 600_000) }),
  TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: spec({ modes: AGENT, syntax: `0..${HOUR_MS}`, default: "15000",
    fallback: "15000", meaning: "On shutdown, how long in-flight streams may take to finish.",
    schema: intSchema(0, HOUR_MS) }),
  TUNNEL_TLS_PIN: spec({ modes: AGENT, syntax: "sha256:<base64 or hex>,…", default: "none (verify with TUNNEL_TLS_CA)",
    listValue: true,
    meaning: "Accept exactly a server certificate whose public key (SubjectPublicKeyInfo) has one of these SHA-256 " +
      "hashes, whatever its CA or name, instead of a CA; several for rotation.", schema: listSchema(parsePins) }),
  TUNNEL_TLS_SERVER_NAME: spec({ modes: AGENT, syntax: "host name", default: "the server's host",
    meaning: "Name sent as SNI and checked against the server certificate.",
    schema: v.pipe(v.string(), v.trim(), v.regex(/^[A-Za-z0-9_.-]{1,253}$/, "expected a host name")) }),
  TUNNEL_PROXY: spec({ modes: AGENT, syntax: "http://[user:password@]host:port",
    default: "https_proxy / HTTPS_PROXY (http_proxy for plaintext), minus NO_PROXY; else direct", secret: true,
    meaning: "HTTP CONNECT proxy every server connection (TCP, TLS or WebSocket) goes through, with Basic proxy " +
      "authentication from the URL.", schema: listSchema(parseProxy) }),
} as const;

/** A known variable name. */
export type VarName = keyof typeof SPECS;

/** Parsed values, by variable (absent when unset without a default). */
export type Values = { -readonly [K in VarName]?: v.InferOutput<(typeof SPECS)[K]["schema"]> };

/** The table as documentation rows, in help order. */
export const VARIABLES: readonly VariableDoc[] = Object.entries(SPECS).map(([name, s]) => ({
  name,
  modes: s.modes,
  syntax: s.syntax,
  default: s.default,
  meaning: s.meaning,
  secret: s.secret,
}));
