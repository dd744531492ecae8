/**
 * Plain MOSN agents on our server (TUNNEL_MOSN_AGENTS=on, SPEC.md §7), driven by a MOSN agent written from MOSN's
 * documented behaviour (test/support/mosn-agent.ts): raw connections carry one visitor each, byte-exact; they share
 * a cluster with our agents by weight; MOSN's statuses for bad handshakes; GracefulClose only from the agent's IP.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import net from "node:net";
import type { ServerHandle } from "../../src/server/server.ts";
import { mosnFrame, mosnInitInfoJson, readMosnFrame, startMosnAgent, type MosnAgent } from "../support/mosn-agent.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const SECRET = "mosn-secret-0123456789";
const KiB = 1024;
const echo = startEchoServer();
const agents: MosnAgent[] = [];
afterAll(() => echo.stop());
afterEach(async () => {
  for (const a of agents.splice(0)) a.kill();
  await stopAll();
});

/** A server taking MOSN agents into cluster "edge" (token) and "open" (none), route to edge/web. */
function mosnServer(extra: Record<string, string> = {}): Promise<ServerHandle> {
  return server({
    TUNNEL_CLUSTERS: `edge=token:${SECRET},open=none`,
    TUNNEL_ROUTES: "127.0.0.1:0=edge/web,127.0.0.1:0=open/web",
    TUNNEL_MOSN_AGENTS: "on",
    TUNNEL_AUTH_FAILURE_LIMIT: "0",
    ...extra,
  });
}

async function mosnAgent(srv: ServerHandle, opts: { cluster?: string; policy?: string; credential?: string; connectionNum?: number; trailing?: Uint8Array } = {}): Promise<MosnAgent> {
  const a = await startMosnAgent({
    serverPort: srv.agentPort,
    servicePort: echo.port,
    cluster: opts.cluster ?? "edge",
    policy: opts.policy ?? "token",
    credential: opts.credential ?? SECRET,
    connectionNum: opts.connectionNum ?? 1,
    ...(opts.trailing ? { trailing: opts.trailing } : {}),
  });
  agents.push(a);
  return a;
}

const idleRaw = (srv: ServerHandle, cluster = "edge") => [...srv.registry.rawHosts()].filter((r) => r.cluster === cluster && r.idle).length;

describe("raw connections carry visitors byte-exact", () => {
  test("20 sequential visitors of 256 KiB each", async () => {
    const srv = await mosnServer();
    const a = await mosnAgent(srv, { connectionNum: 2 });
    expect(a.statuses).toEqual([1, 1]);
    for (let i = 0; i < 20; i++) {
      await waitFor(() => idleRaw(srv) >= 1, "an idle raw connection");
      const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 1600 + i, sendBytes: 256 * KiB });
      expect(r).toMatchObject({ ok: true, sent: 256 * KiB, received: 256 * KiB, error: null });
    }
    // Every visitor used up its connection, and MOSN dialled a new one each time.
    expect(a.statuses.length).toBeGreaterThanOrEqual(2 + 19);
    expect(srv.stats.streamsActive).toBe(0);
  });

  test("4 concurrent visitors of 256 KiB each, one raw connection each", async () => {
    const srv = await mosnServer();
    await mosnAgent(srv, { connectionNum: 4 });
    await waitFor(() => idleRaw(srv) === 4, "four idle raw connections");
    const results = await Promise.all([0, 1, 2, 3].map((i) => runVisitor({ port: srv.routePorts[0] as number, seed: 1700 + i, sendBytes: 256 * KiB })));
    for (const r of results) expect(r).toMatchObject({ ok: true, received: 256 * KiB, error: null });
  });

  test("bytes the agent sent behind its InitInfo reach the visitor first", async () => {
    const srv = await mosnServer();
    await mosnAgent(srv, { trailing: new TextEncoder().encode("BANNER:") });
    await waitFor(() => idleRaw(srv) === 1, "the raw connection");
    const got = await new Promise<string>((resolve, reject) => {
      let text = "";
      void Bun.connect({
        hostname: "127.0.0.1",
        port: srv.routePorts[0] as number,
        allowHalfOpen: true,
        socket: {
          open(s: Socket<undefined>) {
            s.write("ping");
            s.shutdown();
          },
          data(_s, d) {
            text += new TextDecoder().decode(d);
          },
          close: () => resolve(text),
          connectError: (_s, e) => reject(e),
        },
      });
    });
    expect(got).toBe("BANNER:ping");
  });

  test("a raw host and one of our agents in one cluster share visitors by weight (10 : 30)", async () => {
    const srv = await mosnServer({ TUNNEL_METRICS_PER_AGENT: "on" }); // per-agent tallies tell who served whom
    await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: SECRET, TUNNEL_SERVICES: `web=127.0.0.1:${echo.port}`, TUNNEL_WEIGHT: "30", TUNNEL_CONNECTIONS: "1" });
    await mosnAgent(srv);
    for (let i = 0; i < 20; i++) {
      await waitFor(() => idleRaw(srv) === 1, "the raw host to be available");
      const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 1800 + i, sendBytes: 8 * KiB });
      expect(r.ok).toBe(true);
    }
    const served = (name: string) => srv.stats.endedByRouteAgent.get(`edge/web\u0000${name}`)?.streams ?? 0;
    expect({ raw: served("127.0.0.1"), ours: served("edge-1") }).toEqual({ raw: 5, ours: 15 });
  });
});

/** One MOSN handshake by hand: the status the server answers (null: closed without one) and whether it closed. */
async function handshakeStatus(port: number, frame: Uint8Array): Promise<{ status: number | null; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let buf = new Uint8Array(0);
    let status: number | null = null;
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write(frame),
        data(_s, d) {
          const j = new Uint8Array(buf.length + d.length);
          j.set(buf);
          j.set(d, buf.length);
          buf = j;
          const f = readMosnFrame(buf);
          if (f !== null) status = (f.json as { status: number }).status;
        },
        close: () => resolve({ status, closed: true }),
        connectError: (_s, e) => reject(e),
      },
    });
  });
}

describe("bad handshakes get MOSN's statuses; our own agents are unaffected", () => {
  test("wrong credential → 2, unknown policy → 3, unknown cluster → 4, oversized body refused (18), empty policy on a token cluster → 3", async () => {
    const srv = await mosnServer();
    const port = srv.agentPort;
    expect(await handshakeStatus(port, mosnFrame(1, mosnInitInfoJson("edge", "token", "wrong-secret-0123456789")))).toEqual({ status: 2, closed: true });
    expect(await handshakeStatus(port, mosnFrame(1, mosnInitInfoJson("edge", "custom-validator", "x")))).toEqual({ status: 3, closed: true });
    expect(await handshakeStatus(port, mosnFrame(1, mosnInitInfoJson("nope", "token", SECRET)))).toEqual({ status: 4, closed: true });
    expect(await handshakeStatus(port, mosnFrame(1, mosnInitInfoJson("edge", "", "")))).toEqual({ status: 3, closed: true });
    const big = mosnFrame(1, mosnInitInfoJson("edge", "token", "x".repeat(20_000)));
    expect(await handshakeStatus(port, big)).toEqual({ status: 18, closed: true });
    expect([...srv.registry.rawHosts()]).toHaveLength(0);
    // The MOSN agent of the wrong credential gets 2 too; its slot dies, as MOSN's does.
    const wrong = await mosnAgent(srv, { credential: "wrong-secret-0123456789" });
    expect(wrong.statuses).toEqual([2]);
    // An empty policy is MOSN's "no authentication": a none cluster takes it.
    const open = await mosnAgent(srv, { cluster: "open", policy: "", credential: "" });
    expect(open.statuses).toEqual([1]);
    await waitFor(() => idleRaw(srv, "open") === 1, "the raw host in open");
    const r = await runVisitor({ port: srv.routePorts[1] as number, seed: 1900, sendBytes: 64 * KiB });
    expect(r.ok).toBe(true);
  });

  test("without TUNNEL_MOSN_AGENTS a MOSN agent still gets 16 and a GracefulClose is malformed (18)", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_AUTH_FAILURE_LIMIT: "0" });
    expect(await handshakeStatus(srv.agentPort, mosnFrame(1, mosnInitInfoJson("edge", "token", SECRET)))).toEqual({ status: 16, closed: true });
    const gc = mosnFrame(3, `{"addresses":["127.0.0.1:1"],"cluster_name":"edge"}`);
    expect(await handshakeStatus(srv.agentPort, gc)).toEqual({ status: 18, closed: true });
  });
});

describe("hostile MOSN peers", () => {
  test("an idle raw connection that sends more than 64 KiB is closed; a malformed GracefulClose is answered 18; the server carries on", async () => {
    const srv = await mosnServer();
    const init = mosnFrame(1, mosnInitInfoJson("edge", "token", SECRET));
    const flood = new Uint8Array(init.length + 70 * KiB).fill(0x61);
    flood.set(init);
    const closed = await new Promise<boolean>((resolve) => {
      const c = net.createConnection({ host: "127.0.0.1", port: srv.agentPort });
      c.on("connect", () => c.write(Buffer.from(flood))); // node buffers what the socket cannot take yet
      c.on("error", () => {});
      c.on("close", () => resolve(true));
      c.resume();
    });
    expect(closed).toBe(true);
    await waitFor(() => [...srv.registry.rawHosts()].length === 0, "the flooding raw host to be gone");
    const bad = mosnFrame(3, `{"addresses":"127.0.0.1:1","cluster_name":"edge"}`);
    expect(await handshakeStatus(srv.agentPort, bad)).toEqual({ status: 18, closed: true });
    await mosnAgent(srv);
    await waitFor(() => idleRaw(srv) === 1, "a well-behaved MOSN agent");
    expect((await runVisitor({ port: srv.routePorts[0] as number, seed: 2100, sendBytes: 16 * KiB })).ok).toBe(true);
  });
});

describe("GracefulClose", () => {
  /** Sends a GracefulClose for `addresses` from `from` and waits until the server closes the connection. */
  function gracefulClose(port: number, from: string, addresses: string[], cluster = "edge"): Promise<void> {
    return new Promise((resolve, reject) => {
      const c = net.createConnection({ host: "127.0.0.1", port, localAddress: from });
      c.on("connect", () => c.write(Buffer.from(mosnFrame(3, JSON.stringify({ addresses, cluster_name: cluster })))));
      c.on("error", reject);
      c.on("close", () => resolve());
      c.resume();
    });
  }

  test("from another IP it removes nothing; from the agent's own IP it removes exactly that agent's raw hosts", async () => {
    const srv = await mosnServer();
    const a = await mosnAgent(srv, { connectionNum: 2 });
    const b = await mosnAgent(srv, { connectionNum: 1 });
    await waitFor(() => idleRaw(srv) === 3, "three raw hosts");
    const mine = a.localAddresses();
    expect(mine).toHaveLength(2);
    await gracefulClose(srv.agentPort, "127.0.0.2", mine);
    await gracefulClose(srv.agentPort, "127.0.0.1", mine, "open"); // right IP, wrong cluster
    expect(idleRaw(srv)).toBe(3);
    const r = await runVisitor({ port: srv.routePorts[0] as number, seed: 2000, sendBytes: 32 * KiB });
    expect(r.ok).toBe(true);
    await waitFor(() => idleRaw(srv) === 3, "the used connection to come back");

    const before = new Set(a.localAddresses());
    await a.stop("127.0.0.1");
    await waitFor(() => [...srv.registry.rawHosts()].length === 1, "agent a's raw hosts to go");
    const left = [...srv.registry.rawHosts()].map((h) => `${h.remoteAddress}:${h.remotePort}`);
    expect(left).toEqual(b.localAddresses());
    expect(left.some((x) => before.has(x))).toBe(false);
  });
});

test("/api/status and /metrics show raw connections with their kind", async () => {
  const srv = await mosnServer({ TUNNEL_ADMIN_LISTEN: "127.0.0.1:0", TUNNEL_METRICS_PER_AGENT: "on" });
  await mosnAgent(srv, { connectionNum: 2 });
  await waitFor(() => idleRaw(srv) === 2, "two raw hosts");
  const status = (await (await fetch(`http://127.0.0.1:${srv.adminPort}/api/status`)).json()) as {
    clusters: { name: string; hosts: { kind: string; hostName: string; state?: string; weight: number }[] }[];
  };
  const hosts = status.clusters.find((c) => c.name === "edge")?.hosts ?? [];
  expect(hosts.map((h) => [h.kind, h.hostName, h.state, h.weight])).toEqual([["raw", "127.0.0.1", "idle", 10], ["raw", "127.0.0.1", "idle", 10]]);
  const metrics = await (await fetch(`http://127.0.0.1:${srv.adminPort}/metrics`)).text();
  expect(metrics).toContain('backchannel_server_raw_connections{cluster="edge",agent="127.0.0.1",state="idle"} 2');
  expect(metrics).toContain('backchannel_server_agents{cluster="edge"} 1');
});
