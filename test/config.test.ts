/** Config: a table over every variable (default, valid, invalid), cross-variable rules, warnings, redaction. */
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import {
  VARIABLES,
  helpText,
  loadConfig,
  redactConfig,
  type AgentConfig,
  type Config,
  type Mode,
  type ServerConfig,
} from "../src/config.ts";
import { parseHostPort } from "../src/config-parse.ts";
import { TABLE_END, TABLE_START, configTable } from "../scripts/gen-config-table.ts";

const SECRET = "s3cret-value-0123456789";
const SECRET2 = "another-s3cret-abcdefgh";
const OPTS = { isTTY: false, hostname: "test-host" };
type Env = Record<string, string | undefined>;
const BASE: Record<Mode, Env> = {
  server: { TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_TLS: "off" },
  agent: { TUNNEL_SERVERS: "127.0.0.1:7000", TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "web=127.0.0.1:8080" },
};

function load(mode: Mode, env: Env) {
  return loadConfig({ ...BASE[mode], ...env }, mode, OPTS);
}
function ok(mode: Mode, env: Env): Config {
  const r = load(mode, env);
  if (!r.ok) throw new Error(`expected ok, got: ${r.errors.join("; ")}`);
  return r.config;
}
function errors(mode: Mode, env: Env): string[] {
  const r = load(mode, env);
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(env)}`);
  return r.errors;
}

/** One row per variable: where it lands in the config, its default, values that parse, values that must not. */
interface Row {
  mode: Mode; field: (c: Config) => unknown; def: unknown; valid: [string, unknown][]; invalid: string[];
  /** Extra env for every case of this row (undefined deletes a base variable). */
  env?: Env;
}
const s = (c: Config) => c as ServerConfig;
const a = (c: Config) => c as AgentConfig;
const hp = (host: string, port: number) => ({ host, port });
const TLS_FILES = { TUNNEL_TLS: "on", TUNNEL_TLS_CERT: "/c.pem", TUNNEL_TLS_KEY: "/k.pem", TUNNEL_TLS_CLIENT_CA: "/ca.pem" };

const ROWS: Record<string, Row> = {
  TUNNEL_LOG_LEVEL: { mode: "server", field: (c) => c.logLevel, def: "info",
    valid: [["trace", "trace"], ["DEBUG", "debug"], ["warn", "warn"], ["error", "error"]], invalid: ["verbose", "5"] },
  TUNNEL_LOG_FORMAT: { mode: "agent", field: (c) => c.logFormat, def: "json",
    valid: [["pretty", "pretty"], ["JSON", "json"]], invalid: ["text"] },
  TUNNEL_ADMIN_LISTEN: { mode: "server", field: (c) => c.adminListen, def: null,
    valid: [["9090", hp("127.0.0.1", 9090)], ["0.0.0.0:0", hp("0.0.0.0", 0)], ["[::1]:9090", hp("::1", 9090)]],
    invalid: ["abc", "127.0.0.1:65536", "::1:9090", "host:", "[::1]9090"] },
  TUNNEL_ADMIN_TOKEN: { mode: "agent", field: (c) => c.adminToken, def: null, valid: [[SECRET2, SECRET2]],
    invalid: ["too-short"], env: { TUNNEL_ADMIN_LISTEN: "9090" } },
  TUNNEL_TLS: { mode: "agent", field: (c) => c.tls, def: true,
    valid: [["off", false], ["No", false], ["0", false], ["false", false], ["TRUE", true], ["yes", true], ["1", true], ["on", true]],
    invalid: ["maybe", "2"] },
  TUNNEL_TLS_CA: { mode: "agent", field: (c) => c.tlsCa, def: null, valid: [["/etc/ca.pem", "/etc/ca.pem"]],
    invalid: ["-----BEGIN CERTIFICATE-----\nMIIB"] },
  TUNNEL_TLS_CERT: { mode: "server", field: (c) => c.tlsCert, def: null, valid: [[" /c.pem ", "/c.pem"]],
    invalid: ["-----BEGIN CERTIFICATE-----"], env: { TUNNEL_TLS_KEY: "/k.pem" } },
  TUNNEL_TLS_KEY: { mode: "server", field: (c) => c.tlsKey, def: null, valid: [["/k.pem", "/k.pem"]],
    invalid: ["-----BEGIN PRIVATE KEY-----\nMIIE"], env: { TUNNEL_TLS_CERT: "/c.pem" } },
  TUNNEL_TLS_MIN_VERSION: { mode: "agent", field: (c) => c.tlsMinVersion, def: "1.2",
    valid: [["1.3", "1.3"], [" 1.2 ", "1.2"]], invalid: ["1.1", "1.0", "TLSv1.3", "3"] },
  TUNNEL_TLS_RELOAD_INTERVAL_MS: { mode: "server", field: (c) => c.tlsReloadIntervalMs, def: 10000,
    valid: [["0", 0], ["3600000", 3600000]], invalid: ["-1", "3600001", "1s"] },
  TUNNEL_STREAM_WINDOW_BYTES: { mode: "server", field: (c) => c.streamWindowBytes, def: 2097152,
    valid: [["65536", 65536], ["16777216", 16777216]], invalid: ["65535", "16777217", "2M", "1e6"] },
  TUNNEL_STREAM_WINDOW_MAX_BYTES: { mode: "agent", field: (c) => c.streamWindowMaxBytes, def: 16777216,
    valid: [["65536", 65536], ["1073741824", 1073741824]], invalid: ["65535", "1073741825", "16M"] },
  TUNNEL_MAX_FRAME_BYTES: { mode: "agent", field: (c) => c.maxFrameBytes, def: 262144,
    valid: [["16384", 16384], ["16777216", 16777216]], invalid: ["16383", "abc", "0x4000"] },
  TUNNEL_HEARTBEAT_INTERVAL_MS: { mode: "server", field: (c) => c.heartbeatIntervalMs, def: 5000,
    valid: [["1000", 1000], ["1", 1]], invalid: ["0", "-5", "1.5"] },
  TUNNEL_HEARTBEAT_TIMEOUT_MS: { mode: "agent", field: (c) => c.heartbeatTimeoutMs, def: 15000,
    valid: [["20000", 20000]], invalid: ["abc", "5000"] },
  TUNNEL_MAX_STREAMS_PER_CONNECTION: { mode: "server", field: (c) => c.maxStreamsPerConnection, def: 4096,
    valid: [["1", 1], ["1048576", 1048576]], invalid: ["0", "1048577"] },
  TUNNEL_HANDSHAKE_MAX_BYTES: { mode: "agent", field: (c) => c.handshakeMaxBytes, def: 16384,
    valid: [["256", 256], ["65535", 65535]], invalid: ["255", "65536"] },
  TUNNEL_CONTROL_QUEUE_MAX_BYTES: { mode: "server", field: (c) => c.controlQueueMaxBytes, def: 262144,
    valid: [["1024", 1024], ["1073741824", 1073741824]], invalid: ["1023", "1073741825", "x"] },
  TUNNEL_STREAM_IDLE_TIMEOUT_MS: { mode: "agent", field: (c) => c.streamIdleTimeoutMs, def: 0,
    valid: [["0", 0], ["30000", 30000], ["86400000", 86400000]], invalid: ["-1", "86400001", "1s"] },
  TUNNEL_UDP_IDLE_TIMEOUT_MS: { mode: "agent", field: (c) => c.udpIdleTimeoutMs, def: 60000,
    valid: [["1000", 1000], ["86400000", 86400000]], invalid: ["999", "0", "86400001", "1m"] },
  TUNNEL_UDP_MAX_FLOWS: { mode: "server", field: (c) => s(c).udpMaxFlows, def: 4096,
    valid: [["1", 1], ["1048576", 1048576]], invalid: ["0", "1048577", "many"] },
  TUNNEL_LISTEN: { mode: "server", field: (c) => s(c).listen, def: hp("0.0.0.0", 7000),
    valid: [["127.0.0.1:0", hp("127.0.0.1", 0)], ["[::]:7000", hp("::", 7000)], ["localhost:7001", hp("localhost", 7001)]],
    invalid: ["7000", "127.0.0.1:70000", "1.2.3:80", "[::1:7000", "a b:1", "999.1.1.1:80"] },
  TUNNEL_CLUSTERS: { mode: "server", field: (c) => s(c).clusters, def: undefined,
    valid: [
      ["a=none", [{ name: "a", policy: "none", secret: null, allowedIdentities: [] }]],
      [`a=token:${SECRET}, b.2=hmac-sha256:${SECRET2}:with:colons`, [
        { name: "a", policy: "token", secret: SECRET, allowedIdentities: [] },
        { name: "b.2", policy: "hmac-sha256", secret: `${SECRET2}:with:colons`, allowedIdentities: [] }]],
    ],
    invalid: ["a=token:short", "a=bogus", "a", "a=none:x", "a=none,a=none", "bad name=none", ","] },
  TUNNEL_ROUTES: { mode: "server", field: (c) => s(c).routes, def: [],
    valid: [
      ["127.0.0.1:0=edge/web, 127.0.0.1:0=edge/api", [
        { listen: hp("127.0.0.1", 0), cluster: "edge", service: "web", match: null, protocol: "tcp" },
        { listen: hp("127.0.0.1", 0), cluster: "edge", service: "api", match: null, protocol: "tcp" }]],
      ["[::1]:8080=edge/web", [{ listen: hp("::1", 8080), cluster: "edge", service: "web", match: null, protocol: "tcp" }]],
      ["0.0.0.0:443=edge/web;sni=App.Example.com, 0.0.0.0:443=edge/api; sni=*.api.example.com, 0.0.0.0:443=edge/other", [
        { listen: hp("0.0.0.0", 443), cluster: "edge", service: "web", match: { kind: "sni", name: "app.example.com" }, protocol: "tcp" },
        { listen: hp("0.0.0.0", 443), cluster: "edge", service: "api", match: { kind: "sni", name: "*.api.example.com" }, protocol: "tcp" },
        { listen: hp("0.0.0.0", 443), cluster: "edge", service: "other", match: null, protocol: "tcp" }]],
      ["0.0.0.0:80=edge/web;host=localhost", [
        { listen: hp("0.0.0.0", 80), cluster: "edge", service: "web", match: { kind: "host", name: "localhost" }, protocol: "tcp" }]],
      ["0.0.0.0:5353/udp=edge/dns, 0.0.0.0:5353=edge/dns-tcp, [::1]:0/UDP=edge/b, 127.0.0.1:1/tcp=edge/c", [
        { listen: hp("0.0.0.0", 5353), cluster: "edge", service: "dns", match: null, protocol: "udp" },
        { listen: hp("0.0.0.0", 5353), cluster: "edge", service: "dns-tcp", match: null, protocol: "tcp" },
        { listen: hp("::1", 0), cluster: "edge", service: "b", match: null, protocol: "udp" },
        { listen: hp("127.0.0.1", 1), cluster: "edge", service: "c", match: null, protocol: "tcp" }]],
    ],
    invalid: ["garbage", "127.0.0.1:80=edge", "127.0.0.1:80=edge/web,127.0.0.1:80=edge/api", "127.0.0.1:80=nope/web",
      "127.0.0.1:53/udpx=edge/dns", "127.0.0.1:53/=edge/dns", "127.0.0.1/udp=edge/dns", "127.0.0.1:53/udp/udp=edge/dns",
      "127.0.0.1:53/udp=edge/dns;sni=a.example", "127.0.0.1:53/udp=edge/a,127.0.0.1:53/udp=edge/b",
      "127.0.0.1:99999=edge/web", "127.0.0.1:80=edge/b@d", "127.0.0.1:80=edge/web;sni=*.com",
      "127.0.0.1:80=edge/web;sni=a..b", "127.0.0.1:80=edge/web;sni=10.0.0.1", "127.0.0.1:80=edge/web;proxy=v1",
      "127.0.0.1:80=edge/web;sni=a.b;host=a.b", "127.0.0.1:80=edge/web;sni=a.*.b"] },
  TUNNEL_TLS_CLIENT_CA: { mode: "server", field: (c) => s(c).tlsClientCa, def: null,
    valid: [["/ca.pem", "/ca.pem"]], invalid: ["-----BEGIN CERTIFICATE-----"] },
  TUNNEL_STATE_DIR: { mode: "server", field: (c) => s(c).stateDir, def: "./backchannel-state",
    valid: [[" /var/lib/backchannel ", "/var/lib/backchannel"]], invalid: ["-----BEGIN PRIVATE KEY-----"] },
  TUNNEL_HANDSHAKE_TIMEOUT_MS: { mode: "server", field: (c) => s(c).handshakeTimeoutMs, def: 5000,
    valid: [["1", 1]], invalid: ["0", "600001"] },
  TUNNEL_MAX_PENDING_HANDSHAKES: { mode: "server", field: (c) => s(c).maxPendingHandshakes, def: 16384,
    valid: [["1", 1]], invalid: ["0"] },
  TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP: { mode: "server", field: (c) => s(c).maxPendingHandshakesPerIp, def: 1024,
    valid: [["5", 5]], invalid: ["x"] },
  TUNNEL_MAX_CONNECTIONS: { mode: "server", field: (c) => s(c).maxConnections, def: null,
    valid: [["1", 1], ["10000000", 10000000]], invalid: ["0", "10000001", "auto"] },
  TUNNEL_REUSE_PORT: { mode: "server", field: (c) => s(c).reusePort, def: false,
    valid: [["on", true]], invalid: ["yes please"] },
  TUNNEL_METRICS_PER_AGENT: { mode: "server", field: (c) => s(c).metricsPerAgent, def: false,
    valid: [["on", true], ["off", false]], invalid: ["agents"] },
  TUNNEL_ACCESS_LOG: { mode: "server", field: (c) => s(c).accessLog, def: true,
    valid: [["off", false]], invalid: ["sometimes"] },
  TUNNEL_MOSN_AGENTS: { mode: "server", field: (c) => s(c).mosnAgents, def: false,
    valid: [["on", true], ["off", false]], invalid: ["mosn"] },
  TUNNEL_AUTH_FAILURE_LIMIT: { mode: "server", field: (c) => s(c).authFailureLimit, def: 5,
    valid: [["0", 0], ["1000000", 1000000]], invalid: ["-1", "1000001", "x"] },
  TUNNEL_AUTH_FAILURE_WINDOW_MS: { mode: "server", field: (c) => s(c).authFailureWindowMs, def: 60000,
    valid: [["1", 1]], invalid: ["0", "86400001"] },
  TUNNEL_AUTH_PENALTY_MS: { mode: "server", field: (c) => s(c).authPenaltyMs, def: 5000,
    valid: [["1", 1]], invalid: ["0", "700000"] }, // 700000 > the default maximum: the cross rule names it
  TUNNEL_AUTH_PENALTY_MAX_MS: { mode: "server", field: (c) => s(c).authPenaltyMaxMs, def: 600000,
    valid: [["86400000", 86400000]], invalid: ["0", "86400001", "4999"] },
  TUNNEL_SHUTDOWN_GRACE_MS: { mode: "server", field: (c) => s(c).shutdownGraceMs, def: 15000,
    valid: [["0", 0]], invalid: ["-1", "x"] },
  TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION: { mode: "server", field: (c) => c.inboundMaxBytesPerConnection, def: 67108864,
    valid: [["65536", 65536], ["1099511627776", 1099511627776]], invalid: ["65535", "1099511627777", "64M"] },
  TUNNEL_INBOUND_MAX_BYTES: { mode: "agent", field: (c) => c.inboundMaxBytes, def: 268435456,
    valid: [["1048576", 1048576]], invalid: ["0", "x"] },
  TUNNEL_DISCOVERY_INTERVAL_MS: { mode: "agent", field: (c) => a(c).discoveryIntervalMs, def: 30000,
    valid: [["100", 100]], invalid: ["99"] },
  TUNNEL_DNS_SERVERS: { mode: "agent", field: (c) => a(c).dnsServers, def: [],
    valid: [["10.0.0.2, 127.0.0.1:5353, [::1]:53, ::2", ["10.0.0.2:53", "127.0.0.1:5353", "[::1]:53", "[::2]:53"]]],
    invalid: ["dns.example", "10.0.0.2:0", ","] },
  TUNNEL_SERVERS: { mode: "agent", field: (c) => a(c).servers, def: [], env: { TUNNEL_SERVER_DISCOVERY: "dns:x:1" },
    valid: [["a:1, [::1]:2", [hp("a", 1), hp("::1", 2)]]], invalid: ["a:0", "a", "a:1,a:1", ","] },
  TUNNEL_SERVER_DISCOVERY: { mode: "agent", field: (c) => a(c).serverDiscovery, def: null,
    valid: [["dns:servers.example:7000", { kind: "dns", name: "servers.example", port: 7000 }],
      ["file:/etc/servers", { kind: "file", path: "/etc/servers" }]],
    invalid: ["dns:x", "ftp:x", "file:", "dns:x:0"] },
  TUNNEL_CLUSTER: { mode: "agent", field: (c) => a(c).cluster, def: undefined,
    valid: [["edge-1.b_c", "edge-1.b_c"]], invalid: ["bad name", "a/b"] },
  TUNNEL_CREDENTIAL_POLICY: { mode: "agent", field: (c) => a(c).credentialPolicy, def: "none",
    valid: [["none", "none"], ["NONE", "none"]], invalid: ["password"], env: { TUNNEL_CREDENTIAL: undefined } },
  TUNNEL_CREDENTIAL: { mode: "agent", field: (c) => a(c).credential, def: null, valid: [[SECRET, SECRET]],
    invalid: ["short-secret"] },
  TUNNEL_SERVICES: { mode: "agent", field: (c) => a(c).services, def: undefined,
    valid: [["web=127.0.0.1:8080;proxy=v2, db=[::1]:5432; proxy=v1, x.y-z_1=host:1", [
      { name: "web", host: "127.0.0.1", port: 8080, proxyProtocol: "v2", protocol: "tcp" },
      { name: "db", host: "::1", port: 5432, proxyProtocol: "v1", protocol: "tcp" },
      { name: "x.y-z_1", host: "host", port: 1, proxyProtocol: null, protocol: "tcp" }]],
    ["dns=127.0.0.1:53/udp, wg=[::1]:51820/UDP, web=h:80/tcp", [
      { name: "dns", host: "127.0.0.1", port: 53, proxyProtocol: null, protocol: "udp" },
      { name: "wg", host: "::1", port: 51820, proxyProtocol: null, protocol: "udp" },
      { name: "web", host: "h", port: 80, proxyProtocol: null, protocol: "tcp" }]]],
    invalid: ["dns=127.0.0.1:53/udpp", "dns=127.0.0.1/udp", "dns=127.0.0.1:53/udp;proxy=v1", "dns=127.0.0.1:0/udp", "web=127.0.0.1:0", "web", "web=h:1;proxy=v3", "web=h:1;tls=on", "web=h:1;proxy=v1;proxy=v2",
      "web=h:1,web=h:2", "bad name=h:1", ","] },
  TUNNEL_CONNECTIONS: { mode: "agent", field: (c) => a(c).connections, def: 2,
    valid: [["1", 1], ["64", 64], [" 8 ", 8]], invalid: ["abc", "0", "65", "1e1", "0x10", "-1", "2.5"] },
  TUNNEL_PROTOCOL: { mode: "agent", field: (c) => a(c).protocol, def: "backchannel",
    valid: [["mosn", "mosn"], ["BACKCHANNEL", "backchannel"]], invalid: ["yamux"] },
  TUNNEL_WEIGHT: { mode: "agent", field: (c) => a(c).weight, def: 10, valid: [["1", 1], ["100", 100]],
    invalid: ["0", "101"] },
  TUNNEL_HOSTNAME: { mode: "agent", field: (c) => a(c).hostname, def: "test-host",
    valid: [["edge-01.example", "edge-01.example"]], invalid: ["has space"] },
  TUNNEL_CONNECT_RETRY_TIMES: { mode: "agent", field: (c) => a(c).connectRetryTimes, def: -1,
    valid: [["0", 0], ["5", 5], ["-1", -1]], invalid: ["-2", "forever"] },
  TUNNEL_RECONNECT_BASE_MS: { mode: "agent", field: (c) => a(c).reconnectBaseMs, def: 1000,
    valid: [["500", 500]], invalid: ["0", "40000"] },
  TUNNEL_RECONNECT_MAX_MS: { mode: "agent", field: (c) => a(c).reconnectMaxMs, def: 30000,
    valid: [["60000", 60000], ["1000", 1000]], invalid: ["x", "999"] },
  TUNNEL_CONNECT_TIMEOUT_MS: { mode: "agent", field: (c) => a(c).connectTimeoutMs, def: 15000,
    valid: [["100", 100]], invalid: ["0"] },
  TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: { mode: "agent", field: (c) => a(c).gracefulCloseMaxWaitMs, def: 15000,
    valid: [["0", 0]], invalid: ["-1"] },
  TUNNEL_TLS_PIN: { mode: "agent", field: (c) => a(c).tlsPins, def: [],
    valid: [[`sha256:${"ab".repeat(32)}`, [`sha256:${Buffer.from("ab".repeat(32), "hex").toString("base64")}`]],
      [`sha256:${"A".repeat(43)}=, sha256:${"B".repeat(42)}A`, [`sha256:${"A".repeat(43)}=`, `sha256:${"B".repeat(42)}A=`]]],
    invalid: ["abc", `sha1:${"ab".repeat(20)}`, `sha256:${"ab".repeat(31)}`, `sha256:${"B".repeat(43)}`, ","] },
  TUNNEL_TLS_SERVER_NAME: { mode: "agent", field: (c) => a(c).tlsServerName, def: null,
    valid: [["tunnel.example.com", "tunnel.example.com"]], invalid: ["bad name"] },
  TUNNEL_PROXY: { mode: "agent", field: (c) => a(c).proxy, def: null,
    valid: [["http://u:p%40ss@proxy.corp:3128", { host: "proxy.corp", port: 3128, user: "u", password: "p@ss", source: "TUNNEL_PROXY" }],
      ["http://[::1]:8080", { host: "::1", port: 8080, user: null, password: null, source: "TUNNEL_PROXY" }]],
    invalid: ["socks5://p:1080", "proxy.corp:3128", "http://p:99999", "http://u:p@"] },
  TUNNEL_WS_LISTEN: { mode: "server", field: (c) => s(c).wsListen, def: null,
    valid: [["127.0.0.1:0", hp("127.0.0.1", 0)], ["[::]:8443", hp("::", 8443)]], invalid: ["8443", "a b:1"] },
  TUNNEL_WS_PATH: { mode: "server", field: (c) => s(c).wsPath, def: "/backchannel",
    valid: [["/tunnel/v1", "/tunnel/v1"]], invalid: ["tunnel", "/a b", "/x?y"] },
  TUNNEL_WS_TLS: { mode: "server", field: (c) => s(c).wsTls, def: true, valid: [["off", false], ["on", true]], invalid: ["maybe"],
    env: { TUNNEL_TLS: "on" } },
  TUNNEL_TRUSTED_PROXIES: { mode: "server", field: (c) => s(c).trustedProxies.map((b) => b.text), def: [],
    valid: [["10.0.0.0/8, fd00::/8,192.0.2.7", ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]]], invalid: ["10.0.0.0/33", "proxy.corp", ","] },
};
ROWS.TUNNEL_CLUSTERS?.valid.push(["m=mtls:agent-1|agent-2, n=mtls", [
  { name: "m", policy: "mtls", secret: null, allowedIdentities: ["agent-1", "agent-2"] },
  { name: "n", policy: "mtls", secret: null, allowedIdentities: ["n"] }]]);

test("the table covers every variable (TUNNEL_MODE has its own tests)", () => {
  const names = VARIABLES.map((d) => d.name).filter((n) => n !== "TUNNEL_MODE");
  expect(Object.keys(ROWS).sort()).toEqual(names.sort());
});

for (const [name, row] of Object.entries(ROWS)) {
  describe(name, () => {
    const env = (value: string | undefined): Env => {
      const e: Env = { ...BASE[row.mode], ...row.env, [name]: value };
      if (name === "TUNNEL_CLUSTERS" && value?.includes("mtls")) Object.assign(e, TLS_FILES);
      return e;
    };
    if (row.def !== undefined) {
      test("default", () => expect(row.field(ok(row.mode, env(undefined)))).toEqual(row.def));
    } else {
      test("required", () => expect(errors(row.mode, env(undefined))).toEqual([expect.stringMatching(new RegExp(`^${name}: required`))]));
    }
    test.each(row.valid)("valid %p", (raw, want) => expect(row.field(ok(row.mode, env(raw)))).toEqual(want));
    test.each(row.invalid.map((raw) => [raw]))("invalid %p names the variable", (raw) => {
      const errs = errors(row.mode, env(raw));
      expect(errs.length).toBeGreaterThan(0);
      for (const e of errs) expect(e).toContain(name);
      const doc = VARIABLES.find((d) => d.name === name);
      if ((doc?.secret && raw.length >= 8) || raw.includes("\n")) for (const e of errs) expect(e).not.toContain(raw);
    });
    test("blank counts as unset", () => {
      if (row.def === undefined) expect(errors(row.mode, env("  "))[0]).toStartWith(`${name}: required`);
      else expect(row.field(ok(row.mode, env("")))).toEqual(row.def);
    });
  });
}

describe("mode", () => {
  test("--mode wins over TUNNEL_MODE; TUNNEL_MODE alone works; case-insensitive", () => {
    const r = loadConfig({ ...BASE.agent, TUNNEL_MODE: "server" }, "agent", OPTS);
    expect(r.ok && r.config.mode).toBe("agent");
    const r2 = loadConfig({ ...BASE.agent, TUNNEL_MODE: "AGENT" }, undefined, OPTS);
    expect(r2.ok && r2.config.mode).toBe("agent");
  });
  test("missing or bad mode is an error naming it", () => {
    const r = loadConfig({}, undefined, OPTS);
    expect(!r.ok && r.errors).toEqual([expect.stringMatching(/^TUNNEL_MODE: required/)]);
    const r2 = loadConfig({}, "nonsense", OPTS);
    expect(!r2.ok && r2.errors[0]).toBe('--mode: expected server or agent, got "nonsense"');
    const r3 = loadConfig({ TUNNEL_MODE: "edge" }, undefined, OPTS);
    expect(!r3.ok && r3.errors[0]).toBe('TUNNEL_MODE: expected server or agent, got "edge"');
  });
  test("a bad mode still reports bad common variables", () => {
    const r = loadConfig({ TUNNEL_LOG_LEVEL: "loud", TUNNEL_CONNECTIONS: "abc" }, "x", OPTS);
    expect(!r.ok && r.errors).toEqual(['--mode: expected server or agent, got "x"', expect.stringContaining("TUNNEL_LOG_LEVEL")]);
  });
});

describe("messages", () => {
  test("an integer error reads NAME: expected …, got \"value\"", () => {
    expect(errors("agent", { TUNNEL_CONNECTIONS: "abc" })).toEqual(['TUNNEL_CONNECTIONS: expected an integer 1..64, got "abc"']);
  });
  test("every bad variable is reported at once", () => {
    const errs = errors("agent", { TUNNEL_CONNECTIONS: "abc", TUNNEL_WEIGHT: "0", TUNNEL_SERVICES: undefined, TUNNEL_TLS: "maybe" });
    for (const n of ["TUNNEL_CONNECTIONS", "TUNNEL_WEIGHT", "TUNNEL_SERVICES", "TUNNEL_TLS"]) {
      expect(errs.some((e) => e.startsWith(`${n}:`))).toBe(true);
    }
    expect(errs).toHaveLength(4);
  });
  test("log format defaults to pretty on a terminal", () => {
    expect(ok("agent", {}).logFormat).toBe("json"); // OPTS.isTTY is false
    const r = loadConfig(BASE.agent, "agent", { isTTY: true, hostname: "h" });
    expect(r.ok && r.config.logFormat).toBe("pretty");
  });
  test("TUNNEL_HOSTNAME defaults to the OS host name when opts.hostname is not given", () => {
    const r = loadConfig(BASE.agent, "agent");
    expect(r.ok && (r.config as AgentConfig).hostname).toBe(hostname());
  });
});

describe("cross-variable rules", () => {
  test("server certificate and key go together; neither means the self-signed identity", () => {
    const msg = "TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together: set both, or neither for a self-signed identity in TUNNEL_STATE_DIR";
    expect(ok("server", { TUNNEL_TLS: undefined }).tls).toBe(true);
    expect(errors("server", { TUNNEL_TLS: "on", TUNNEL_TLS_CERT: "/c.pem" })).toEqual([msg]);
    expect(errors("server", { TUNNEL_TLS: "on", TUNNEL_TLS_KEY: "/k.pem" })).toEqual([msg]);
    expect(ok("server", { TUNNEL_TLS: "on", TUNNEL_TLS_CERT: "/c.pem", TUNNEL_TLS_KEY: "/k.pem" }).tls).toBe(true);
  });
  test("an agent takes TUNNEL_TLS_PIN or TUNNEL_TLS_CA, not both", () => {
    const pin = `sha256:${"A".repeat(43)}=`;
    expect(errors("agent", { TUNNEL_TLS_PIN: pin, TUNNEL_TLS_CA: "/ca.pem" })).toEqual([
      "TUNNEL_TLS_PIN and TUNNEL_TLS_CA: set one (a pin replaces CA verification)"]);
  });
  test("an mtls cluster needs TLS on and TUNNEL_TLS_CLIENT_CA", () => {
    expect(errors("server", { TUNNEL_CLUSTERS: "m=mtls" })[0]).toContain("TUNNEL_TLS_CLIENT_CA");
    const e = errors("server", { TUNNEL_CLUSTERS: "m=mtls", ...TLS_FILES, TUNNEL_TLS_CLIENT_CA: undefined });
    expect(e).toEqual([expect.stringContaining('cluster "m"')]);
  });
  test("heartbeat timeout must exceed the interval; reconnect max must be at least base", () => {
    expect(errors("server", { TUNNEL_HEARTBEAT_INTERVAL_MS: "2000", TUNNEL_HEARTBEAT_TIMEOUT_MS: "2000" })).toEqual([
      "TUNNEL_HEARTBEAT_TIMEOUT_MS (2000) must be greater than TUNNEL_HEARTBEAT_INTERVAL_MS (2000)"]);
    expect(errors("agent", { TUNNEL_RECONNECT_BASE_MS: "5000", TUNNEL_RECONNECT_MAX_MS: "4000" })[0]).toContain("TUNNEL_RECONNECT_MAX_MS");
  });
  test("a rule whose variable failed is skipped (one message, not two)", () => {
    expect(errors("server", { TUNNEL_HEARTBEAT_INTERVAL_MS: "abc" })).toHaveLength(1);
    expect(errors("server", { TUNNEL_CLUSTERS: "x", TUNNEL_ROUTES: "127.0.0.1:1=edge/web" })).toHaveLength(1);
  });
  test("agent needs TUNNEL_SERVERS or TUNNEL_SERVER_DISCOVERY", () => {
    expect(errors("agent", { TUNNEL_SERVERS: undefined })).toEqual([expect.stringMatching(/^TUNNEL_SERVERS: required/)]);
    const both = ok("agent", { TUNNEL_SERVER_DISCOVERY: "file:/s" }) as AgentConfig;
    expect(both.servers).toHaveLength(1);
    expect(both.serverDiscovery).toEqual({ kind: "file", path: "/s" });
  });
  test("credential policy: default token with a credential; token/hmac need one; mtls needs a client cert", () => {
    expect(a(ok("agent", { TUNNEL_CREDENTIAL: SECRET })).credentialPolicy).toBe("token");
    expect(a(ok("agent", { TUNNEL_CREDENTIAL: SECRET, TUNNEL_CREDENTIAL_POLICY: "HMAC-SHA256" })).credentialPolicy).toBe("hmac-sha256");
    expect(errors("agent", { TUNNEL_CREDENTIAL_POLICY: "hmac-sha256" })).toEqual(["TUNNEL_CREDENTIAL: required by TUNNEL_CREDENTIAL_POLICY=hmac-sha256"]);
    expect(errors("agent", { TUNNEL_CREDENTIAL_POLICY: "mtls" })[0]).toContain("TUNNEL_TLS_CERT");
    expect(a(ok("agent", { TUNNEL_CREDENTIAL_POLICY: "mtls", TUNNEL_TLS_CERT: "/c", TUNNEL_TLS_KEY: "/k" })).credentialPolicy).toBe("mtls");
    expect(errors("agent", { TUNNEL_TLS_CERT: "/c" })).toEqual(["TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together: set both or neither"]);
  });
  test("TUNNEL_PROTOCOL=mosn takes exactly one service, without proxy=", () => {
    expect(a(ok("agent", { TUNNEL_PROTOCOL: "mosn" })).protocol).toBe("mosn");
    expect(errors("agent", { TUNNEL_PROTOCOL: "mosn", TUNNEL_SERVICES: "a=127.0.0.1:1,b=127.0.0.1:2" })).toEqual([
      expect.stringMatching(/^TUNNEL_SERVICES: TUNNEL_PROTOCOL=mosn .* name exactly one, .*got 2$/)]);
    expect(errors("agent", { TUNNEL_PROTOCOL: "mosn", TUNNEL_SERVICES: "a=127.0.0.1:1;proxy=v2" })).toEqual([
      expect.stringMatching(/got 1 with proxy=$/)]);
    expect(a(ok("agent", { TUNNEL_SERVICES: "a=127.0.0.1:1,b=127.0.0.1:2" })).protocol).toBe("backchannel");
  });

  test("TUNNEL_PROTOCOL=mosn dials over TCP or TLS only: no WebSocket server, no proxy, no UDP service", () => {
    const msg = /^TUNNEL_PROTOCOL=mosn dials MOSN servers directly over TCP or TLS/;
    expect(errors("agent", { TUNNEL_PROTOCOL: "mosn", TUNNEL_TLS: "on", TUNNEL_SERVERS: "wss://cloud.example/t" })).toEqual([expect.stringMatching(msg)]);
    expect(errors("agent", { TUNNEL_PROTOCOL: "mosn", TUNNEL_PROXY: "http://proxy.example:3128" })).toEqual([expect.stringMatching(msg)]);
    expect(errors("agent", { TUNNEL_PROTOCOL: "mosn", TUNNEL_SERVICES: "dns=127.0.0.1:53/udp" })).toEqual([expect.stringMatching(msg)]);
  });
});

describe("warnings", () => {
  const warnings = (mode: Mode, env: Env) => load(mode, env).warnings;
  test("unknown TUNNEL_* names are warned about, with the closest known name", () => {
    expect(warnings("agent", { TUNNEL_FOO: "1", PATH: "/bin" })).toEqual([expect.stringContaining("unknown variable TUNNEL_FOO")]);
    expect(warnings("agent", { TUNNEL_CONECTIONS: "3" })[0]).toContain("did you mean TUNNEL_CONNECTIONS?");
    expect(load("agent", { TUNNEL_FOO: "1", TUNNEL_WEIGHT: "0" }).warnings[0]).toContain("TUNNEL_FOO");
  });
  test("a variable of the other mode is warned about", () => {
    expect(warnings("agent", { TUNNEL_ROUTES: "x" })).toEqual(["TUNNEL_ROUTES is a server variable; ignored in agent mode"]);
  });
  test("legal but suspicious settings", () => {
    expect(warnings("server", { TUNNEL_TLS_CERT: "/c" })).toEqual(["TUNNEL_TLS=off: TUNNEL_TLS_CERT ignored"]);
    expect(warnings("agent", { TUNNEL_TLS: "off", TUNNEL_TLS_PIN: `sha256:${"A".repeat(43)}=` })).toEqual(["TUNNEL_TLS=off: TUNNEL_TLS_PIN ignored"]);
    expect(warnings("agent", { TUNNEL_ADMIN_TOKEN: SECRET })[0]).toContain("TUNNEL_ADMIN_LISTEN is not");
    expect(warnings("agent", { TUNNEL_ADMIN_LISTEN: "0.0.0.0:9090" })[0]).toContain("not a loopback address");
    expect(warnings("agent", { TUNNEL_ADMIN_LISTEN: "9090" })).toEqual([]);
    expect(warnings("server", { TUNNEL_CLUSTERS: "open=none" })[0]).toContain('cluster "open" has policy none');
    expect(warnings("agent", { TUNNEL_CREDENTIAL: SECRET, TUNNEL_CREDENTIAL_POLICY: "none" })[0]).toContain("not sent");
  });
});

describe("secrets", () => {
  const server = ok("server", { TUNNEL_CLUSTERS: `a=token:${SECRET},b=hmac-sha256:${SECRET2},c=none`, TUNNEL_ADMIN_TOKEN: SECRET2 });
  const agent = ok("agent", { TUNNEL_CREDENTIAL: SECRET, TUNNEL_ADMIN_TOKEN: SECRET2 });
  test("redactConfig hides every secret and keeps the rest", () => {
    for (const c of [server, agent]) {
      const text = JSON.stringify(redactConfig(c));
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(SECRET2);
      expect(text).toContain("[redacted]");
    }
    expect(redactConfig(server).clusters).toEqual([
      { name: "a", policy: "token", secret: "[redacted]", allowedIdentities: [] },
      { name: "b", policy: "hmac-sha256", secret: "[redacted]", allowedIdentities: [] },
      { name: "c", policy: "none", secret: null, allowedIdentities: [] }]);
    expect(redactConfig(agent).credential).toBe("[redacted]");
    expect((server as ServerConfig).clusters[0]?.secret).toBe(SECRET); // the original is untouched
  });
  test.each([
    [`edge=tokn:${SECRET}`], [SECRET], [`edge:token:${SECRET}`], [`edge=none:${SECRET}`], [`edge=token:${SECRET.slice(0, 9)}`],
    [`bad name=token:${SECRET}`], [`edge=token:${SECRET},edge=token:${SECRET}`],
  ])("a bad TUNNEL_CLUSTERS entry %# does not echo its secret", (raw) => {
    const errs = errors("server", { TUNNEL_CLUSTERS: raw }).join("\n");
    expect(errs).toContain("TUNNEL_CLUSTERS");
    for (const secret of [SECRET, SECRET.slice(0, 9), SECRET2]) expect(errs).not.toContain(secret);
  });
  test("short secrets are not echoed; other errors do not leak valid secrets", () => {
    const errs = errors("agent", { TUNNEL_CREDENTIAL: "short-secret", TUNNEL_ADMIN_TOKEN: "tiny-token", TUNNEL_WEIGHT: SECRET });
    expect(errs.join("\n")).not.toMatch(/short-secret|tiny-token/);
    expect(errors("agent", { TUNNEL_CREDENTIAL: SECRET, TUNNEL_WEIGHT: "x" }).join("\n")).not.toContain(SECRET);
  });
  test("helpText lists every variable with its default and no secret", () => {
    const help = helpText();
    for (const d of VARIABLES) {
      expect(help).toContain(`${d.name}=`);
      expect(help).toContain(`Default: ${d.default}.`);
    }
    expect(help).not.toContain(SECRET);
  });
});

describe("parseHostPort", () => {
  test.each([
    ["[::1]:7000", false, hp("::1", 7000)], ["host:65535", false, hp("host", 65535)], ["host:0", true, hp("host", 0)],
    ["host:0", false, "expected host:port with a port 1..65535"], ["[fe80::1]:1", false, hp("fe80::1", 1)],
    ["[nope]:1", false, "expected an IPv6 address inside [ ]"], ["::1", true, "IPv6 addresses need brackets, e.g. [::1]:7000"],
  ] as const)("%p (port 0 allowed: %p)", (raw, zero, want) => {
    expect(parseHostPort(raw, { allowPortZero: zero })).toEqual(want);
  });
});

describe("documentation", () => {
  test("every variable row is documented", () => {
    for (const d of VARIABLES) {
      expect(d.name).toMatch(/^TUNNEL_[A-Z_]+$/);
      expect(d.meaning.length).toBeGreaterThan(10);
      expect(d.default.length).toBeGreaterThan(0);
      expect(d.modes.length).toBeGreaterThan(0);
    }
  });
  test("README holds exactly the current config table between its markers", async () => {
    const readme = await Bun.file(new URL("../README.md", import.meta.url)).text();
    const start = readme.indexOf(TABLE_START);
    const end = readme.indexOf(TABLE_END);
    expect(start).toBeGreaterThan(-1);
    expect(readme.slice(start + TABLE_START.length, end).trim()).toBe(configTable());
  });
});
