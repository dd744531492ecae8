/**
 * /api/status follows an agent joining, draining and leaving; /healthz and /readyz; the admin token; the endpoint
 * as the process starts it (log line with the bound port) and a bind failure.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { sourceCommand, spawnRole, portOf, type RoleProcess } from "../../scripts/lib/roles.ts";
import { startServer } from "../../src/server/server.ts";
import { startServerAdmin } from "../../src/admin/admin.ts";
import { isTunnelError } from "../../src/errors.ts";
import { startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, serverConfig, stopAll } from "../support/tunnel.ts";

const echo = startEchoServer();
const procs: RoleProcess[] = [];
afterAll(() => echo.stop());
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop(2_000)));
  await stopAll();
});

interface HostStatus { hostName: string; connectionId: string; draining: boolean; streams: number; weight: number; remoteAddress: string }
interface ServerStatus { mode: "server"; ready: boolean; clusters: { name: string; hosts: HostStatus[] }[]; routes: { cluster: string; service: string; streamsTotal: number }[] }
interface AgentStatus {
  mode: "agent"; ready: boolean; hostName: string;
  servers: { server: string; ready: boolean; connections: { state: string; connectionId: string | null; streams: number }[] }[];
  services: { name: string; target: string; proxyProtocol: string | null }[];
}

async function get(port: number | null, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, init);
}
async function status<T>(port: number | null): Promise<T> {
  const r = await get(port, "/api/status");
  expect(r.status).toBe(200);
  return (await r.json()) as T;
}
/** Polls the status until `cond` holds (the status is read over HTTP each time). */
async function statusUntil<T>(port: number | null, cond: (s: T) => boolean, what: string): Promise<T> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const s = await status<T>(port);
    if (cond(s)) return s;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
    await Bun.sleep(10);
  }
}
const hostsOf = (s: ServerStatus, name: string) => s.clusters.flatMap((c) => c.hosts).filter((h) => h.hostName === name);

test("an agent joining, draining with a stream in flight, and leaving, as /api/status shows it", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", TUNNEL_ADMIN_LISTEN: "0" });
  expect((await status<ServerStatus>(srv.adminPort)).clusters).toEqual([{ name: "edge", policy: "none", agents: 0, hostsTotal: 0, hostsOffset: 0, hosts: [] } as never]);

  const a = await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "edge-a",
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port};proxy=v1`,
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS: "10000",
  });
  const joined = await statusUntil<ServerStatus>(srv.adminPort, (s) => hostsOf(s, "edge-a").length === 2, "edge-a joined");
  const ids = hostsOf(joined, "edge-a").map((h) => h.connectionId).sort();
  for (const h of hostsOf(joined, "edge-a")) {
    expect(h).toMatchObject({ draining: false, streams: 0, weight: 10, remoteAddress: "127.0.0.1" });
  }
  const agentStatus = await status<AgentStatus>(a.adminPort);
  expect(agentStatus.ready).toBe(true);
  expect(agentStatus.hostName).toBe("edge-a");
  expect(agentStatus.servers).toHaveLength(1);
  expect(agentStatus.servers[0]?.server).toBe(`127.0.0.1:${srv.agentPort}`);
  expect(agentStatus.servers[0]?.connections.map((c) => c.connectionId).sort()).toEqual(ids);
  expect(agentStatus.servers[0]?.connections.every((c) => c.state === "ready")).toBe(true);
  expect(agentStatus.services).toHaveLength(1);
  expect(agentStatus.services[0]).toMatchObject({ name: "echo", target: `127.0.0.1:${echo.port}`, proxyProtocol: "v1" });

  // A visitor keeps one stream open, so one connection stays draining while the agent closes gracefully.
  const visitor = await Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[0] as number, socket: { data() {} } });
  visitor.write("x");
  const busy = await statusUntil<ServerStatus>(srv.adminPort, (s) => hostsOf(s, "edge-a").some((h) => h.streams === 1), "the stream");
  const busyId = hostsOf(busy, "edge-a").find((h) => h.streams === 1)?.connectionId;
  const closing = a.close(true);
  const draining = await statusUntil<ServerStatus>(srv.adminPort, (s) => {
    const hs = hostsOf(s, "edge-a");
    return hs.length === 1 && hs[0]?.draining === true;
  }, "edge-a draining");
  expect(hostsOf(draining, "edge-a")[0]?.connectionId).toBe(busyId as string);
  expect((await get(a.adminPort, "/readyz")).status).toBe(503);
  expect((await status<AgentStatus>(a.adminPort)).ready).toBe(false);

  visitor.end();
  await closing;
  await statusUntil<ServerStatus>(srv.adminPort, (s) => hostsOf(s, "edge-a").length === 0, "edge-a gone");
  expect(a.adminPort).not.toBeNull();
  expect(await get(a.adminPort, "/healthz").catch(() => "refused")).toBe("refused"); // admin stopped with the agent
}, 30_000);

test("/api/status pages each cluster's hosts: ?offset= and ?limit=, with totals; bad values fall back", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", TUNNEL_ADMIN_LISTEN: "0" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "edge-a", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "3" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "edge-b", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "2" });
  type Paged = { clusters: { agents: number; hostsTotal: number; hostsOffset: number; hosts: HostStatus[] }[] };
  const page = async (q: string) => (await (await get(srv.adminPort, `/api/status${q}`)).json()) as Paged;
  const all = await page("");
  expect(all.clusters[0]).toMatchObject({ agents: 2, hostsTotal: 5, hostsOffset: 0 });
  expect(all.clusters[0]?.hosts.length).toBe(5);
  const first = await page("?limit=2");
  const rest = await page("?offset=2&limit=10");
  expect(first.clusters[0]?.hosts.length).toBe(2);
  expect(rest.clusters[0]).toMatchObject({ hostsTotal: 5, hostsOffset: 2 });
  const ids = [...(first.clusters[0]?.hosts ?? []), ...(rest.clusters[0]?.hosts ?? [])].map((h) => h.connectionId);
  expect(new Set(ids)).toEqual(new Set(all.clusters[0]?.hosts.map((h) => h.connectionId)));
  expect((await page("?offset=99")).clusters[0]?.hosts).toEqual([]);
  expect((await page("?limit=-1&offset=x")).clusters[0]?.hosts.length).toBe(5);
});

test("/healthz and /readyz: the agent is ready only with a connection to every server", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ADMIN_LISTEN: "0" });
  const srv2 = await server({ TUNNEL_CLUSTERS: "edge=none" });
  const a = await agent([srv, srv2], { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_ADMIN_LISTEN: "0" });
  expect(await (await get(srv.adminPort, "/healthz")).text()).toBe("ok\n");
  expect((await get(srv.adminPort, "/readyz")).status).toBe(200);
  expect((await get(a.adminPort, "/readyz")).status).toBe(200);
  await srv2.close();
  await waitFor(() => a.slots.filter((s) => s.serverPort === srv2.agentPort).every((s) => s.state !== "ready"), "server 2 lost");
  const r = await get(a.adminPort, "/readyz");
  expect(r.status).toBe(503);
  expect(await r.text()).toBe(`not ready: no ready connection to 127.0.0.1:${srv2.agentPort}\n`);
  expect((await get(a.adminPort, "/healthz")).status).toBe(200);
  expect((await get(srv.adminPort, "/nothing")).status).toBe(404);
  expect((await get(srv.adminPort, "/metrics", { method: "POST" })).status).toBe(405);
}, 20_000);

test("TUNNEL_ADMIN_TOKEN: bearer or basic, wrong or missing is 401, probes stay open", async () => {
  const token = "admin-token-0123456789";
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ADMIN_LISTEN: "0", TUNNEL_ADMIN_TOKEN: token });
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
  for (const path of ["/", "/metrics", "/api/status"]) {
    const none = await get(srv.adminPort, path);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Basic");
    for (const auth of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, "Bearer ", basic("admin", "wrong"), "Token x"]) {
      expect((await get(srv.adminPort, path, { headers: { authorization: auth } })).status).toBe(401);
    }
    expect((await get(srv.adminPort, path, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await get(srv.adminPort, path, { headers: { authorization: basic("anyone", token) } })).status).toBe(200);
  }
  expect((await get(srv.adminPort, "/healthz")).status).toBe(200);
  expect((await get(srv.adminPort, "/readyz")).status).toBe(200);
});

test("the page is self-contained: inline script and style allowed by hash, nothing external", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ADMIN_LISTEN: "0" });
  const r = await get(srv.adminPort, "/");
  const html = await r.text();
  expect(r.headers.get("content-type")).toBe("text/html; charset=utf-8");
  const csp = r.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("default-src 'none'");
  expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
  expect(html).not.toMatch(/\b(src|href)=/);
  const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? "";
  const hash = new Bun.CryptoHasher("sha256").update(script).digest("base64");
  expect(csp).toContain(`'sha256-${hash}'`);
});

test("a server closing gracefully is not ready while its streams finish", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", TUNNEL_ADMIN_LISTEN: "0", TUNNEL_SHUTDOWN_GRACE_MS: "10000" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
  const visitor = await Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[0] as number, socket: { data() {} } });
  visitor.write("x");
  await waitFor(() => srv.stats.streamsActive === 1, "the stream");
  const closing = srv.close(true);
  const r = await get(srv.adminPort, "/readyz");
  expect(r.status).toBe(503);
  expect(await r.text()).toBe("not ready: shutting down\n");
  visitor.end();
  await closing;
}, 20_000);

test("the process logs the bound admin address; a port in use fails startup with ERR_LISTEN", async () => {
  const p = spawnRole(sourceCommand("server"), {
    TUNNEL_TLS: "off",
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ADMIN_LISTEN: "127.0.0.1:0",
  });
  procs.push(p);
  const line = await p.waitForLog((l) => l.msg === "admin listening");
  const port = portOf(line.address as string);
  expect(port).toBeGreaterThan(0);
  expect(await (await get(port, "/healthz")).text()).toBe("ok\n");
  await p.waitForLog((l) => l.msg === "ready");

  const config = serverConfig({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ADMIN_LISTEN: `127.0.0.1:${port}` });
  const e = await startServer(config, { admin: (h) => startServerAdmin(config, h) }).catch((err: unknown) => err);
  if (!(e instanceof Error)) await (e as { close(): Promise<void> }).close(); // bound the same port: fail below
  expect(isTunnelError(e, "ERR_LISTEN")).toBe(true);
  expect(await p.stop()).toBe(0);
}, 20_000);
