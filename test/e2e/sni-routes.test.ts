/**
 * Routing by TLS server name with real clients: curl (certificate verification on) reaches two edge services that
 * are real TLS servers with their own certificates through one listen port, so TLS is end to end and every byte of
 * it passed through; the wildcard route takes names of one and more labels; openssl s_client with an unknown name
 * gets the unrecognized_name alert, or the default route where there is one; a Bun TLS client echoes 1 MiB
 * byte-exact through an sni route.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { PatternSource, PatternVerifier } from "../support/pattern.ts";
import { testCerts } from "../support/certs.ts";
import { have, leafFor, run, startTlsService, type Service } from "../support/name-routes.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import type { ServerHandle } from "../../src/server/server.ts";

const services: Service[] = [];
let web: Service, api: Service, other: Service, echo: Service;
let ca = "";

if (!have("curl") || !have("openssl")) throw new Error("curl and openssl are needed (apt-get install curl openssl)");

beforeAll(() => {
  ca = testCerts().ca.cert;
  web = startTlsService(leafFor("sni-web", ["app.example.com"]), { body: "web service" });
  api = startTlsService(leafFor("sni-api", ["*.api.example.com"]), { body: "api service" });
  other = startTlsService(leafFor("sni-other", ["other.example.net"]), { body: "default service" });
  echo = startTlsService(leafFor("sni-echo", ["echo.example.com"]), { echo: true });
  services.push(web, api, other, echo);
});
afterEach(stopAll);
afterAll(() => services.forEach((s) => s.stop()));

/** A server with sni routes on one port (plus `extra` routes) and an agent for all four services. */
async function start(extra = ""): Promise<{ srv: ServerHandle; port: number }> {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/web;sni=app.example.com,127.0.0.1:0=edge/api;sni=*.api.example.com," +
      `127.0.0.1:0=edge/echo;sni=echo.example.com${extra}`,
  });
  await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_SERVICES: `web=127.0.0.1:${web.port},api=127.0.0.1:${api.port},other=127.0.0.1:${other.port},echo=127.0.0.1:${echo.port}`,
  });
  const ports = new Set(srv.routePorts);
  expect(ports.size).toBe(1);
  return { srv, port: srv.routePorts[0] as number };
}

const curl = (name: string, port: number) =>
  run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "--resolve", `${name}:${port}:127.0.0.1`, `https://${name}:${port}/`]);

const sClient = (name: string, port: number) =>
  run(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", name, "-CAfile", ca, "-verify_return_error"], "");

describe("sni routes", () => {
  test("curl --resolve to two names on one port reaches two TLS services, each verified with its own certificate", async () => {
    const { srv, port } = await start();
    const a = await curl("app.example.com", port);
    expect(a).toMatchObject({ code: 0, stdout: "web service" });
    const b = await curl("v1.api.example.com", port);
    expect(b).toMatchObject({ code: 0, stdout: "api service" });
    // Verification is on: trusting another CA, the same request fails (curl exit 60).
    const untrusted = await run(["curl", "-sS", "--max-time", "10", "--cacert", testCerts().otherCa.cert,
      "--resolve", `app.example.com:${port}:127.0.0.1`, `https://app.example.com:${port}/`]);
    expect(untrusted.code).toBe(60);
    expect(srv.stats.routedByIndex.get(0)).toBe(2);
    expect(srv.stats.routedByIndex.get(1)).toBe(1);
  }, 30_000);

  test("the wildcard takes one or more labels (a.b.api.example.com), never the bare suffix (api.example.com)", async () => {
    const { port } = await start();
    const deep = await sClient("a.b.api.example.com", port);
    expect(deep.stdout).toContain("CN = *.api.example.com");
    const bare = await sClient("api.example.com", port);
    expect(bare.code).not.toBe(0);
    expect(`${bare.stdout}${bare.stderr}`).toMatch(/unrecognized name|alert number 112/);
  }, 30_000);

  test("openssl s_client -servername with an unknown name gets the unrecognized_name alert; counted", async () => {
    const { srv, port } = await start();
    const r = await sClient("unknown.example.org", port);
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/unrecognized name|alert number 112/);
    expect([...srv.stats.unroutedByReason]).toEqual([[`127.0.0.1:${port}\u0000sni\u0000no_match`, 1]]);
    // Names are case-insensitive.
    expect(await curl("APP.Example.COM", port)).toMatchObject({ code: 0, stdout: "web service" });
  }, 30_000);

  test("the default route takes unknown names and ClientHellos without a name", async () => {
    const { srv, port } = await start(",127.0.0.1:0=edge/other");
    const unknown = await sClient("other.example.net", port);
    expect(unknown.stdout).toContain("CN = other.example.net");
    expect(unknown.stdout).toContain("Verify return code: 0 (ok)");
    const noName = await run(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-noservername", "-CAfile", ca], "");
    expect(noName.stdout).toContain("CN = other.example.net");
    expect(await curl("app.example.com", port)).toMatchObject({ code: 0, stdout: "web service" });
    expect(srv.stats.routedByIndex.get(3)).toBe(2);
    expect(srv.stats.unroutedByReason.size).toBe(0);
  }, 30_000);

  test("a Bun TLS client echoes 1 MiB byte-exact through an sni route (server name echo.example.com, verified)", async () => {
    const { port } = await start();
    const total = 1024 * 1024;
    const source = new PatternSource(18);
    const verifier = new PatternVerifier(18);
    const done = new Promise<{ authorized: boolean; error: string | null }>((resolve, reject) => {
      let authorized = false;
      let pump = () => {};
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        allowHalfOpen: true,
        tls: { serverName: "echo.example.com", ca: Bun.file(ca) },
        socket: {
          handshake(s, ok) {
            authorized = ok && s.authorized;
            let sent = 0;
            pump = () => {
              while (sent < total) {
                const n = Math.min(16_384, total - sent);
                const w = s.write(source.next(n, true));
                if (w <= 0) return;
                sent += n;
                if (w < n) throw new Error("partial TLS write");
              }
              s.shutdown();
            };
            pump();
          },
          drain() {
            pump();
          },
          data(_s, chunk) {
            verifier.push(chunk);
          },
          close(_s, err) {
            resolve({ authorized, error: err ? String(err) : null });
          },
          connectError(_s, err) {
            reject(err);
          },
        },
      }).catch(reject);
    });
    const r = await done;
    expect(r.authorized).toBe(true);
    expect(verifier.ok(total)).toBe(true);
  }, 30_000);
});
