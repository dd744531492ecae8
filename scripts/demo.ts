/**
 * `npm run demo`: shows the tunnel working on loopback. Starts a small HTTP service (the "edge" service), a
 * Backchannel server and agent as real processes configured only by environment, sends a request through the
 * server's public port, prints the response and the commands to do the same by hand. TLS without a PKI: the server
 * makes its self-signed identity (in a temp state directory) and logs its pin; the agent is given that pin. Exits 0
 * on success and stops everything it started.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sourceCommand, spawnRole, startServerProcess, type RoleProcess } from "./lib/roles.ts";

const started: RoleProcess[] = [];
const web = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: (req) => new Response(`Hello from the edge service behind Backchannel! You asked for ${new URL(req.url).pathname}\n`),
});
const stateDir = mkdtempSync(join(tmpdir(), "backchannel-demo-"));

async function main(): Promise<void> {
  const secret = randomBytes(18).toString("base64url");
  console.log(`1. edge HTTP service on 127.0.0.1:${web.port}`);
  const srv = await startServerProcess(sourceCommand("server"), {
    TUNNEL_TLS: "on",
    TUNNEL_STATE_DIR: join(stateDir, "state"),
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_CLUSTERS: `demo=token:${secret}`,
    TUNNEL_ROUTES: "127.0.0.1:0=demo/web",
  });
  started.push(srv.role);
  if (srv.tlsPin === null) throw new Error("the server logged no TLS pin");
  const publicPort = srv.routePorts[0] as number;
  console.log(`2. server: agents connect to 127.0.0.1:${srv.agentPort}, visitors to 127.0.0.1:${publicPort}`);
  console.log(`   TLS with a self-signed identity it made in ${join(stateDir, "state")}; its pin: ${srv.tlsPin}`);
  const agent = spawnRole(sourceCommand("agent"), {
    TUNNEL_TLS: "on",
    TUNNEL_TLS_PIN: srv.tlsPin,
    TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
    TUNNEL_CLUSTER: "demo",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_SERVICES: `web=127.0.0.1:${web.port}`,
    TUNNEL_HOSTNAME: "demo-edge",
  });
  started.push(agent);
  await agent.waitForLog((l) => l.msg === "connected");
  console.log("3. agent connected over TLS, accepting only that pin (it dialled out; the edge accepts no inbound connection)");

  const res = await fetch(`http://127.0.0.1:${publicPort}/hello`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  console.log(`4. GET http://127.0.0.1:${publicPort}/hello through the tunnel → ${res.status}\n\n   ${body.trim()}\n`);
  if (res.status !== 200 || !body.includes("behind Backchannel")) throw new Error("unexpected response");

  console.log(`To do the same by hand with the compiled binary (npm run build):

  TUNNEL_LISTEN=127.0.0.1:7000 TUNNEL_CLUSTERS='demo=token:<secret>' \\
  TUNNEL_ROUTES='127.0.0.1:8080=demo/web' ./dist/backchannel-linux-x64 --mode=server
  # its log: "server listening" … "tlsPin":"sha256:…" (a self-signed identity kept in ./backchannel-state)

  TUNNEL_SERVERS=127.0.0.1:7000 TUNNEL_TLS_PIN='sha256:…' TUNNEL_CLUSTER=demo TUNNEL_CREDENTIAL='<secret>' \\
  TUNNEL_SERVICES='web=127.0.0.1:3000' ./dist/backchannel-linux-x64 --mode=agent

  curl http://127.0.0.1:8080/    # reaches the service on 127.0.0.1:3000 at the edge

(<secret> is at least 16 characters. See README "Security model" for pins, CAs and certificate reload.)`);
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  code = 1;
} finally {
  await Promise.all(started.map((p) => p.stop()));
  web.stop(true);
  rmSync(stateDir, { recursive: true, force: true });
}
process.exit(code);
