/** Server discovery: a watched file of host:port lines, and DNS names re-resolved against a loopback responder. */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { parseServersFile } from "../../src/agent/discovery.ts";
import { startDnsResponder } from "../support/dns-responder.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agentConfig, server, stopAll } from "../support/tunnel.ts";

let echo: TestServer;
const dir = mkdtempSync(join(tmpdir(), "backchannel-discovery-"));
const agents: AgentHandle[] = [];
beforeAll(() => {
  echo = startEchoServer();
});
afterAll(() => {
  echo.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
});

const clusterEnv = { TUNNEL_CLUSTERS: "edge=none" };

test("servers file: parsing skips comments and reports bad lines", () => {
  const r = parseServersFile("# servers\n127.0.0.1:7000\n\n[::1]:7001  # v6\nnot-a-server\nhost.example:99999\n");
  expect(r.servers).toEqual([
    { host: "127.0.0.1", port: 7000 },
    { host: "::1", port: 7001 },
  ]);
  expect(r.bad).toEqual(["not-a-server", "host.example:99999"]);
});

test("file discovery adds a server and drains the one that left", async () => {
  const s1 = await server({ ...clusterEnv, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const s2 = await server({ ...clusterEnv, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const file = join(dir, "servers.txt");
  writeFileSync(file, `127.0.0.1:${s1.agentPort}\n`);
  const a = await startAgent(
    agentConfig({
      TUNNEL_SERVER_DISCOVERY: `file:${file}`,
      TUNNEL_DISCOVERY_INTERVAL_MS: "100",
      TUNNEL_CLUSTER: "edge",
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    }),
  );
  agents.push(a);
  await waitFor(() => s1.registry.byId.size === 2, "agent on server 1");
  expect((await runVisitor({ port: s1.routePorts[0] as number, seed: 1, sendBytes: 50_000 })).ok).toBe(true);

  writeFileSync(file, `# moved\n127.0.0.1:${s2.agentPort}\n`);
  await waitFor(() => s2.registry.byId.size === 2, "agent on server 2");
  await waitFor(() => s1.registry.byId.size === 0, "server 1 drained");
  expect((await runVisitor({ port: s2.routePorts[0] as number, seed: 2, sendBytes: 50_000 })).ok).toBe(true);
  expect([...a.peers.keys()]).toEqual([`127.0.0.1:${s2.agentPort}`]);
}, 20_000);

test("DNS discovery: every A record is a server; records that disappear are drained", async () => {
  // Two servers on the same port at two loopback addresses, as a headless Service gives pod IPs.
  const s1 = await server({ ...clusterEnv, TUNNEL_LISTEN: "127.0.0.2:0", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const s2 = await server({ ...clusterEnv, TUNNEL_LISTEN: `127.0.0.3:${s1.agentPort}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const dns = await startDnsResponder(["127.0.0.2"]);
  try {
    const a = await startAgent(
      agentConfig({
        TUNNEL_SERVER_DISCOVERY: `dns:servers.backchannel.test:${s1.agentPort}`,
        TUNNEL_DNS_SERVERS: `127.0.0.1:${dns.port}`,
        TUNNEL_DISCOVERY_INTERVAL_MS: "100",
        TUNNEL_CLUSTER: "edge",
        TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
      }),
    );
    agents.push(a);
    await waitFor(() => s1.registry.byId.size === 2, "agent on server 1");
    dns.addresses = ["127.0.0.2", "127.0.0.3"];
    await waitFor(() => s2.registry.byId.size === 2, "agent on server 2 as well");
    expect(s1.registry.byId.size).toBe(2);
    for (const s of [s1, s2]) expect((await runVisitor({ port: s.routePorts[0] as number, seed: 3, sendBytes: 50_000 })).ok).toBe(true);
    dns.addresses = ["127.0.0.3"];
    await waitFor(() => s1.registry.byId.size === 0, "server 1 drained");
    expect(s2.registry.byId.size).toBe(2);
  } finally {
    dns.stop();
  }
}, 20_000);
