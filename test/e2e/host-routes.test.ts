/**
 * Routing by HTTP Host with real clients: curl with two Host headers reaches two services through one port, the
 * wildcard and default routes take theirs, an unknown host gets a short 404, a head without Host a 400 (or the
 * default route), an HTTP/2 prior-knowledge client GOAWAY(HTTP_1_1_REQUIRED); only the first request of a
 * connection decides its route.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { h2GoAwayHttp11Required } from "../../src/protocol/http-head.ts";
import { have, rawVisitor, run, startHttpService, type Service } from "../support/name-routes.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import type { ServerHandle } from "../../src/server/server.ts";

if (!have("curl")) throw new Error("curl is needed (apt-get install curl)");

const services: Service[] = [];
let one: Service, two: Service, fallback: Service;
beforeAll(() => {
  one = startHttpService("one");
  two = startHttpService("two");
  fallback = startHttpService("fallback");
  services.push(one, two, fallback);
});
afterEach(stopAll);
afterAll(() => services.forEach((s) => s.stop()));

async function start(extra = ""): Promise<{ srv: ServerHandle; port: number }> {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: `127.0.0.1:0=edge/one;host=app.example.com,127.0.0.1:0=edge/two;host=*.example.org${extra}`,
  });
  await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_SERVICES: `one=127.0.0.1:${one.port},two=127.0.0.1:${two.port},fallback=127.0.0.1:${fallback.port}`,
  });
  return { srv, port: srv.routePorts[0] as number };
}

const get = (port: number, args: string[]) =>
  run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", ...args, `http://127.0.0.1:${port}/`]);

describe("host routes", () => {
  test("curl with two Host headers reaches two services through one port; the Host passes through untouched", async () => {
    const { srv, port } = await start();
    expect((await get(port, ["-H", "Host: app.example.com"])).stdout).toBe("one app.example.com\n200");
    expect((await get(port, ["-H", "Host: App.Example.com:8080"])).stdout).toBe("one App.Example.com:8080\n200");
    expect((await get(port, ["-H", "Host: x.example.org"])).stdout).toBe("two x.example.org\n200");
    expect((await get(port, ["-H", "Host: a.b.example.org"])).stdout).toBe("two a.b.example.org\n200");
    expect(srv.stats.routedByIndex.get(0)).toBe(2);
    expect(srv.stats.routedByIndex.get(1)).toBe(2);
  }, 30_000);

  test("an unknown host gets a short 404 naming nothing internal; counted", async () => {
    const { srv, port } = await start();
    const r = await run(["curl", "-sS", "-i", "--max-time", "10", "-H", "Host: nope.example.com", `http://127.0.0.1:${port}/`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("HTTP/1.1 404 Not Found\r\n");
    expect(r.stdout).toEndWith("\r\n\r\nnot found\n");
    expect(r.stdout.toLowerCase()).not.toMatch(/edge|one|two|backchannel|cluster|service/);
    expect([...srv.stats.unroutedByReason]).toEqual([[`127.0.0.1:${port}\u0000host\u0000no_match`, 1]]);
  }, 30_000);

  test("a POST with a body to an unknown host still gets its 404 (the server half-closes and drains)", async () => {
    const { port } = await start();
    const r = await run(["curl", "-sS", "--max-time", "10", "-w", "%{http_code}", "-o", "/dev/null", "-H", "Host: nope.example",
      "--data-binary", "@-", `http://127.0.0.1:${port}/`], "x".repeat(200_000));
    expect(r.stdout).toBe("404");
  }, 30_000);

  test("the default route takes unknown hosts and heads without Host", async () => {
    const { srv, port } = await start(",127.0.0.1:0=edge/fallback");
    expect((await get(port, ["-H", "Host: nope.example.com"])).stdout).toBe("fallback nope.example.com\n200");
    expect((await get(port, ["-H", "Host:", "--http1.0"])).stdout).toBe("fallback -\n200");
    expect(srv.stats.routedByIndex.get(2)).toBe(2);
  }, 30_000);

  test("without a default: a head without Host gets 400; HTTP/2 prior knowledge gets GOAWAY(HTTP_1_1_REQUIRED)", async () => {
    const { srv, port } = await start();
    expect((await get(port, ["-H", "Host:", "--http1.0"])).stdout).toBe("bad request\n\n400");
    const h2 = await run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", `http://127.0.0.1:${port}/`]);
    expect(h2.code).toBe(16); // curl: an HTTP/2 error
    const raw = await rawVisitor(port, [new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]);
    expect(Buffer.from(raw.received).toString("hex")).toBe(Buffer.from(h2GoAwayHttp11Required()).toString("hex"));
    const reasons = new Map([...srv.stats.unroutedByReason].map(([k, n]) => [k.split("\u0000")[2], n]));
    expect(reasons).toEqual(new Map([["no_host", 1], ["h2_preface", 2]]));
  }, 30_000);

  test("keep-alive: the first request decides; a second request for another host goes to the same route", async () => {
    const { port } = await start();
    const heads = "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET / HTTP/1.1\r\nHost: x.example.org\r\nConnection: close\r\n\r\n";
    const r = await rawVisitor(port, [new TextEncoder().encode(heads)], { fin: false });
    const text = new TextDecoder().decode(r.received);
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(text).toContain("one app.example.com");
    expect(text).toContain("one x.example.org");
    expect(text).not.toContain("two ");
  }, 30_000);
});
