/**
 * The configuration types: what loadConfig (config.ts) produces and the roles read. A leaf: it imports nothing, so
 * config-parse.ts, config-vars.ts and config-rules.ts take their types from here instead of from config.ts, which
 * imports them (no circle). config.ts re-exports every type, so the rest of src/ imports them from config.ts.
 */

/** Role of the process. */
export type Mode = "server" | "agent";
/** Log levels, most verbose first. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
/** How an agent proves it may join a cluster. */
export type CredentialPolicy = "token" | "hmac-sha256" | "mtls" | "none";
/** Transport of a route or service: byte streams (TCP) or datagrams (UDP, `/udp`). */
export type Protocol = "tcp" | "udp";
/** A parsed address; IPv6 hosts are stored without brackets. */
export interface HostPort { host: string; port: number }
/** A server the agent dials over WebSocket (`wss://` or `ws://` in TUNNEL_SERVERS): TLS or not, and the path. */
export interface WsEndpoint { tls: boolean; path: string }
/** A server address of the agent: `host:port`, or a WebSocket URL (`ws` set). */
export interface ServerAddress extends HostPort { ws?: WsEndpoint }
/** An HTTP CONNECT proxy (TUNNEL_PROXY, or https_proxy / HTTPS_PROXY / http_proxy); `password` is a secret. */
export interface ProxyConfig { host: string; port: number; user: string | null; password: string | null; source: string }
/** A CIDR block (TUNNEL_TRUSTED_PROXIES): 16 address bytes (IPv4 mapped) and a prefix over 128 bits. */
export interface CidrBlock { bytes: Uint8Array; prefix: number; text: string }

/** Settings both roles read. */
export interface CommonConfig {
  mode: Mode; logLevel: LogLevel; logFormat: "pretty" | "json";
  /** Admin endpoint address, or null when off. */
  adminListen: HostPort | null; adminToken: string | null;
  /** TLS between agent and server; the paths are PEM files, read later by the transport. */
  tls: boolean; tlsCa: string | null; tlsCert: string | null; tlsKey: string | null;
  /** Oldest TLS version accepted. */ tlsMinVersion: "1.2" | "1.3";
  /** Period of the TLS file check (ms); 0: files are read at start only. */ tlsReloadIntervalMs: number;
  streamWindowBytes: number; streamWindowMaxBytes: number; maxFrameBytes: number; heartbeatIntervalMs: number; heartbeatTimeoutMs: number;
  /** Inbound budgets (TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION, TUNNEL_INBOUND_MAX_BYTES). */
  inboundMaxBytesPerConnection: number; inboundMaxBytes: number;
  maxStreamsPerConnection: number; handshakeMaxBytes: number; controlQueueMaxBytes: number;
  /** TUNNEL_STREAM_IDLE_TIMEOUT_MS; 0 = off. */
  streamIdleTimeoutMs: number;
  /** TUNNEL_UDP_IDLE_TIMEOUT_MS: a UDP flow with no datagram either way this long is closed. */
  udpIdleTimeoutMs: number;
}
/** A cluster the server accepts agents into. `secret` is set for token/hmac-sha256; identities for mtls. */
export interface ClusterConfig { name: string; policy: CredentialPolicy; secret: string | null; allowedIdentities: string[] }
/**
 * A name a route answers to on a shared listen address: the TLS server name (`sni`) or the HTTP host (`host`), in
 * lower case, exact or `*.` wildcard (one or more labels).
 */
export interface RouteMatch { kind: "sni" | "host"; name: string }
/**
 * A public listener whose visitors go to `service` on an agent of `cluster`; with `match`, only the visitors that
 * ask for that name (routes on one address share a listener; the one without `match` is the default).
 */
export interface RouteConfig { listen: HostPort; cluster: string; service: string; match: RouteMatch | null; protocol: Protocol }
/** Server role settings. */
export interface ServerConfig extends CommonConfig {
  mode: "server"; listen: HostPort; clusters: ClusterConfig[]; routes: RouteConfig[]; tlsClientCa: string | null;
  /** TUNNEL_STATE_DIR: where the self-signed TLS identity lives. */ stateDir: string;
  handshakeTimeoutMs: number; maxPendingHandshakes: number; maxPendingHandshakesPerIp: number; accessLog: boolean;
  /** TUNNEL_MAX_CONNECTIONS (null: derived from the open-file limit at start, server/connection-cap.ts). */
  maxConnections: number | null;
  /** TUNNEL_METRICS_PER_AGENT: per-agent /metrics series. */ metricsPerAgent: boolean;
  /** TUNNEL_REUSE_PORT: TCP listeners bound with SO_REUSEPORT. */ reusePort: boolean;
  /** Per-source penalties for failed authentication (server/gate.ts AuthPenalties). */
  authFailureLimit: number; authFailureWindowMs: number; authPenaltyMs: number; authPenaltyMaxMs: number;
  shutdownGraceMs: number;
  /** TUNNEL_MOSN_AGENTS: plain MOSN agents join as raw hosts. */ mosnAgents: boolean;
  /** TUNNEL_UDP_MAX_FLOWS: open flows per UDP route; datagrams of further visitors are dropped. */
  udpMaxFlows: number;
  /** TUNNEL_WS_LISTEN (null: off), TUNNEL_WS_PATH, TUNNEL_WS_TLS (defaults to `tls`), TUNNEL_TRUSTED_PROXIES. */
  wsListen: HostPort | null; wsPath: string; wsTls: boolean; trustedProxies: CidrBlock[];
}
/** A target the agent may dial, by service name. */
export interface ServiceConfig { name: string; host: string; port: number; proxyProtocol: "v1" | "v2" | null; protocol: Protocol }
/** Where an agent finds servers besides TUNNEL_SERVERS. */
export type ServerDiscovery = { kind: "dns"; name: string; port: number } | { kind: "file"; path: string };
/** Agent role settings. */
export interface AgentConfig extends CommonConfig {
  mode: "agent"; servers: ServerAddress[]; serverDiscovery: ServerDiscovery | null; cluster: string;
  credentialPolicy: CredentialPolicy; credential: string | null; services: ServiceConfig[]; connections: number;
  weight: number; hostname: string; /** TUNNEL_HOSTNAME was set (else mtls takes the certificate's CN). */ hostnameSet: boolean;
  connectRetryTimes: number; reconnectBaseMs: number; reconnectMaxMs: number;
  connectTimeoutMs: number; gracefulCloseMaxWaitMs: number; tlsServerName: string | null;
  /** TUNNEL_TLS_PIN, canonical `sha256:<base64>` (SPEC.md §6); empty: verify with a CA. */ tlsPins: string[];
  discoveryIntervalMs: number; dnsServers: string[];
  /** TUNNEL_PROTOCOL: our stream protocol, or a MOSN agent's raw connections. */ protocol: "backchannel" | "mosn";
  /** The HTTP CONNECT proxy every server connection goes through (null: direct); `noProxy`: NO_PROXY entries. */
  proxy: ProxyConfig | null; noProxy: string[];
}
/** A loaded configuration. */
export type Config = ServerConfig | AgentConfig;
