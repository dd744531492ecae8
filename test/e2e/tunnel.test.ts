/** End to end on loopback: visitors through server and agent to an echo target, every byte verified. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { runVisitor, startCountingServer, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

let echo: TestServer;
beforeAll(() => {
  echo = startEchoServer();
});
afterAll(() => echo.stop());
afterEach(stopAll);

describe("tunnel", () => {
  test("100 concurrent visitors each echo 1 MiB byte-exact", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const port = srv.routePorts[0] as number;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => runVisitor({ port, seed: 1000 + i, sendBytes: 1024 * 1024 })),
    );
    for (const r of results) {
      expect(r.error).toBeNull();
      expect(r.received).toBe(1024 * 1024);
      expect(r.ok).toBe(true);
    }
    await waitFor(() => srv.stats.streamsActive === 0, "streams to finish");
    expect(srv.stats.streamsTotal).toBe(100);
  }, 60_000);

  test("half-close from the visitor: the whole reply still arrives", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 7, sendBytes: 3 * 1024 * 1024 + 17 });
    expect(r.error).toBeNull();
    expect(r.ok).toBe(true);
  }, 30_000);

  test("half-close from the target: it sends, shuts down, and still receives everything", async () => {
    const upload = 2 * 1024 * 1024 + 5;
    let targetGot = 0;
    let targetDone!: () => void;
    const done = new Promise<void>((r) => (targetDone = r));
    const greeting = new TextEncoder().encode("hello from the target\n");
    const target = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.write(greeting);
          s.shutdown(); // target's write side done; keeps reading
        },
        data(_s, d) {
          targetGot += d.byteLength;
        },
        end(s) {
          targetDone();
          s.end();
        },
        close() {
          targetDone();
        },
      },
    });
    try {
      const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/t" });
      await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `t=127.0.0.1:${target.port}` });
      let text = "";
      const r = await runVisitor({
        port: srv.routePorts[0] as number,
        seed: 9,
        sendBytes: upload,
        expectBytes: greeting.byteLength,
        onData: (d) => (text += new TextDecoder().decode(d)),
      });
      await done;
      expect(text).toBe("hello from the target\n");
      expect(r.sent).toBe(upload);
      expect(targetGot).toBe(upload);
      expect(r.error).toBeNull();
    } finally {
      target.stop(true);
    }
  }, 30_000);

  test("refused target, unknown service, cluster without agent: visitor closed promptly, other streams untouched", async () => {
    const dead = startCountingServer();
    const deadPort = dead.port;
    dead.stop(); // nothing listens there now
    const srv = await server({
      TUNNEL_CLUSTERS: "edge=none,empty=none",
      TUNNEL_ROUTES: "127.0.0.1:0=edge/echo,127.0.0.1:0=edge/refused,127.0.0.1:0=edge/nosuch,127.0.0.1:0=empty/echo",
    });
    await agent(srv, {
      TUNNEL_CLUSTER: "edge",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port},refused=127.0.0.1:${deadPort}`,
    });
    const [echoPort, refusedPort, nosuchPort, emptyPort] = srv.routePorts as [number, number, number, number];
    // A long transfer keeps running on the same connection while the failures happen.
    const long = runVisitor({ port: echoPort, seed: 42, sendBytes: 32 * 1024 * 1024 });
    const fails = await Promise.all(
      [refusedPort, nosuchPort, emptyPort].map((port) => runVisitor({ port, seed: 1, sendBytes: 1000, expectBytes: 0 })),
    );
    for (const f of fails) {
      expect(f.received).toBe(0);
      expect(f.durationMs).toBeLessThan(5_000);
    }
    const l = await long;
    expect(l.error).toBeNull();
    expect(l.ok).toBe(true);
    expect(srv.stats.refusedByRoute.get("empty/echo")).toBe(1);
    expect(srv.stats.resetsByCode.get(9)).toBe(1); // CONNECT_REFUSED
    expect(srv.stats.resetsByCode.get(8)).toBe(1); // UNKNOWN_SERVICE
  }, 60_000);

  test("two agents with weights 1 and 3 get 25% and 75% of 400 visitors (±5%)", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
    const a1 = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_WEIGHT: "1", TUNNEL_HOSTNAME: "light", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const a3 = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_WEIGHT: "3", TUNNEL_HOSTNAME: "heavy", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
    const port = srv.routePorts[0] as number;
    const opened = (a: typeof a1) => a.slots.reduce((n, s) => n + (s.session?.streamsOpened ?? 0), 0);
    for (let batch = 0; batch < 8; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => runVisitor({ port, seed: batch * 50 + i, sendBytes: 100 })));
    }
    const n1 = opened(a1);
    const n3 = opened(a3);
    expect(n1 + n3).toBe(400);
    expect(Math.abs(n1 / 400 - 0.25)).toBeLessThanOrEqual(0.05);
    expect(Math.abs(n3 / 400 - 0.75)).toBeLessThanOrEqual(0.05);
  }, 60_000);
});
