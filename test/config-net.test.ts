/** The middlebox variables (src/config-net.ts and their rules): server URLs, proxies from TUNNEL_PROXY or the environment, NO_PROXY, the WebSocket listener. */
import { describe, expect, test } from "bun:test";
import { loadConfig, redactConfig, type AgentConfig, type ServerConfig } from "../src/config.ts";
import { bypassesProxy, parseProxyUrl, parseServerEntry } from "../src/config-net.ts";

const AGENT = { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "web=127.0.0.1:80" };
const SERVER = { TUNNEL_CLUSTERS: "edge=none" };
const agent = (env: Record<string, string>) => loadConfig({ ...AGENT, ...env }, "agent");

describe("config: WebSocket servers and proxies", () => {
  test("TUNNEL_SERVERS takes host:port, wss:// and ws:// URLs (default ports 443/80, path /backchannel)", () => {
    expect(parseServerEntry("wss://cloud.example.com")).toEqual({ host: "cloud.example.com", port: 443, ws: { tls: true, path: "/backchannel" } });
    expect(parseServerEntry("ws://[::1]:8080/tunnel/x")).toEqual({ host: "::1", port: 8080, ws: { tls: false, path: "/tunnel/x" } });
    expect(parseServerEntry("10.0.0.1:7000")).toEqual({ host: "10.0.0.1", port: 7000 });
    for (const bad of ["https://x.example", "wss://:443", "wss://x.example:99999", "wss://x.example/a b"]) expect(typeof parseServerEntry(bad)).toBe("string");
    const r = agent({ TUNNEL_SERVERS: "wss://a.example/bc,b.example:7000" });
    expect(r.ok && (r.config as AgentConfig).servers.length).toBe(2);
  });

  test("the scheme must agree with TUNNEL_TLS: wss:// needs on, ws:// needs off", () => {
    const ws = agent({ TUNNEL_SERVERS: "ws://a.example" });
    expect(ws.ok).toBe(false);
    expect(!ws.ok && ws.errors.join("\n")).toContain("ws:// entry would send the tunnel in plaintext");
    expect(agent({ TUNNEL_SERVERS: "ws://a.example", TUNNEL_TLS: "off" }).ok).toBe(true);
    const wss = agent({ TUNNEL_SERVERS: "wss://a.example", TUNNEL_TLS: "off" });
    expect(!wss.ok && wss.errors.join("\n")).toContain("wss:// entry needs TUNNEL_TLS=on");
  });

  test("TUNNEL_PROXY: http:// only, credentials percent-decoded, the password never echoed and redacted", () => {
    expect(parseProxyUrl("http://u%40x:p%3Ass@proxy.corp:3128", "TUNNEL_PROXY")).toEqual({ host: "proxy.corp", port: 3128, user: "u@x", password: "p:ss", source: "TUNNEL_PROXY" });
    expect(parseProxyUrl("http://proxy.corp", "X")).toMatchObject({ port: 80, user: null, password: null });
    const bad = agent({ TUNNEL_SERVERS: "a.example:1", TUNNEL_PROXY: "socks5://user:hunter2-secret@p:1080" });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.errors.join("\n")).toContain("TUNNEL_PROXY: expected an http:// proxy URL");
    expect(JSON.stringify(bad)).not.toContain("hunter2-secret");
    const good = agent({ TUNNEL_SERVERS: "a.example:1", TUNNEL_PROXY: "http://user:hunter2-secret@p:3128" });
    expect(good.ok).toBe(true);
    if (good.ok) expect(JSON.stringify(redactConfig(good.config))).not.toContain("hunter2-secret");
  });

  test("without TUNNEL_PROXY: https_proxy before HTTPS_PROXY (TLS), http_proxy for plaintext, unusable values warned and ignored", () => {
    const pick = (env: Record<string, string>) => {
      const r = agent({ TUNNEL_SERVERS: "a.example:1", ...env });
      return r.ok ? { proxy: (r.config as AgentConfig).proxy, warnings: r.warnings } : null;
    };
    expect(pick({ https_proxy: "http://lower:1", HTTPS_PROXY: "http://upper:2" })?.proxy).toMatchObject({ host: "lower", source: "https_proxy" });
    expect(pick({ HTTPS_PROXY: "http://upper:2" })?.proxy).toMatchObject({ host: "upper", source: "HTTPS_PROXY" });
    expect(pick({ HTTPS_PROXY: "http://upper:2", TUNNEL_PROXY: "http://mine:3" })?.proxy).toMatchObject({ host: "mine", source: "TUNNEL_PROXY" });
    expect(pick({ http_proxy: "http://plain:4", TUNNEL_TLS: "off" })?.proxy).toMatchObject({ host: "plain" });
    expect(pick({ http_proxy: "http://plain:4" })?.proxy).toBeNull();
    const https = pick({ HTTPS_PROXY: "https://secure.proxy:443" });
    expect(https?.proxy).toBeNull();
    expect(https?.warnings.join("\n")).toContain("HTTPS_PROXY: ignored");
  });

  test("NO_PROXY as curl reads it: *, domains and their subdomains, a leading dot, IPs and CIDRs", () => {
    expect(bypassesProxy(["*"], "anything")).toBe(true);
    expect(bypassesProxy(["example.com"], "cloud.example.com")).toBe(true);
    expect(bypassesProxy(["example.com"], "example.com")).toBe(true);
    expect(bypassesProxy(["example.com"], "notexample.com")).toBe(false);
    expect(bypassesProxy([".example.com"], "a.b.example.com")).toBe(true);
    expect(bypassesProxy(["10.0.0.0/8"], "10.2.3.4")).toBe(true);
    expect(bypassesProxy(["10.0.0.0/8"], "11.2.3.4")).toBe(false);
    expect(bypassesProxy(["192.0.2.1"], "192.0.2.1")).toBe(true);
    const r = agent({ TUNNEL_SERVERS: "a.example:1", HTTPS_PROXY: "http://p:1", no_proxy: "", NO_PROXY: "internal, .corp" });
    expect(r.ok && (r.config as AgentConfig).noProxy).toEqual(["internal", ".corp"]);
  });

  test("server: TUNNEL_WS_TLS follows TUNNEL_TLS unless set (on needs TUNNEL_TLS=on); trusted proxies and the path are checked", () => {
    const s = (env: Record<string, string>) => loadConfig({ ...SERVER, TUNNEL_WS_LISTEN: "127.0.0.1:0", ...env }, "server");
    const on = s({});
    expect(on.ok && (on.config as ServerConfig).wsTls).toBe(true);
    const off = s({ TUNNEL_TLS: "on", TUNNEL_WS_TLS: "off", TUNNEL_TRUSTED_PROXIES: "10.0.0.0/8,fd00::/8" });
    expect(off.ok && [(off.config as ServerConfig).wsTls, (off.config as ServerConfig).trustedProxies.length, (off.config as ServerConfig).wsPath]).toEqual([false, 2, "/backchannel"]);
    const bad = s({ TUNNEL_TLS: "off", TUNNEL_WS_TLS: "on", TUNNEL_TRUSTED_PROXIES: "10.0.0.0/33", TUNNEL_WS_PATH: "nope" });
    const text = !bad.ok ? bad.errors.join("\n") : "";
    expect(text).toContain("TUNNEL_WS_TLS=on needs TUNNEL_TLS=on");
    expect(text).toContain("TUNNEL_TRUSTED_PROXIES");
    expect(text).toContain("TUNNEL_WS_PATH");
  });
});
