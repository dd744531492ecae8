/**
 * `npm run demo`: shows the tunnel working on loopback. Starts a small HTTP service (the "edge" service), a
 * Backchannel server and agent as real processes configured only by environment, sends a request through the
 * server's public port, prints the response and the commands to do the same by hand. Exits 0 on success and
 * stops everything it started.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sourceCommand, spawnRole, startServerProcess, type RoleProcess } from "./lib/roles.ts";
import { generateCerts, opensslAvailable } from "./lib/certs.ts";

const started: RoleProcess[] = [];
const web = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: (req) => new Response(`Hello from the edge service behind Backchannel! You asked for ${new URL(req.url).pathname}\n`),
});

/** TLS env for server and agent from certificates made in a temp dir, or TLS off when openssl is missing. */
function tlsSetup(): { server: Record<string, string>; agent: Record<string, string>; dir: string | null } {
  if (!opensslAvailable()) {
    console.log("note: no openssl command, so no certificates: this demo runs with TUNNEL_TLS=off (plaintext)");
    return { server: { TUNNEL_TLS: "off" }, agent: { TUNNEL_TLS: "off" }, dir: null };
  }
  const dir = mkdtempSync(join(tmpdir(), "backchannel-demo-"));
  const c = generateCerts(dir);
  console.log(`0. TLS certificates (npm run gen-certs) in ${dir}`);
  return {
    server: { TUNNEL_TLS: "on", TUNNEL_TLS_CERT: c.server.cert, TUNNEL_TLS_KEY: c.server.key },
    agent: { TUNNEL_TLS: "on", TUNNEL_TLS_CA: c.ca.cert },
    dir,
  };
}
let certDir: string | null = null;

async function main(): Promise<void> {
  const secret = randomBytes(18).toString("base64url");
  const tls = tlsSetup();
  certDir = tls.dir;
  console.log(`1. edge HTTP service on 127.0.0.1:${web.port}`);
  const srv = await startServerProcess(sourceCommand("server"), {
    ...tls.server,
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_CLUSTERS: `demo=token:${secret}`,
    TUNNEL_ROUTES: "127.0.0.1:0=demo/web",
  });
  started.push(srv.role);
  const publicPort = srv.routePorts[0] as number;
  console.log(`2. server: agents connect to 127.0.0.1:${srv.agentPort}, visitors to 127.0.0.1:${publicPort}`);
  const agent = spawnRole(sourceCommand("agent"), {
    ...tls.agent,
    TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
    TUNNEL_CLUSTER: "demo",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_SERVICES: `web=127.0.0.1:${web.port}`,
    TUNNEL_HOSTNAME: "demo-edge",
  });
  started.push(agent);
  await agent.waitForLog((l) => l.msg === "connected");
  console.log(`3. agent connected over ${tls.dir ? "TLS" : "plaintext TCP"} (it dialled out; the edge accepts no inbound connection)`);

  const res = await fetch(`http://127.0.0.1:${publicPort}/hello`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  console.log(`4. GET http://127.0.0.1:${publicPort}/hello through the tunnel → ${res.status}\n\n   ${body.trim()}\n`);
  if (res.status !== 200 || !body.includes("behind Backchannel")) throw new Error("unexpected response");

  console.log(`To do the same by hand with the compiled binary (npm run build):

  TUNNEL_TLS=off TUNNEL_LISTEN=127.0.0.1:7000 TUNNEL_CLUSTERS='demo=token:<secret>' \\
  TUNNEL_ROUTES='127.0.0.1:8080=demo/web' ./dist/backchannel-linux-x64 --mode=server

  TUNNEL_TLS=off TUNNEL_SERVERS=127.0.0.1:7000 TUNNEL_CLUSTER=demo TUNNEL_CREDENTIAL='<secret>' \\
  TUNNEL_SERVICES='web=127.0.0.1:3000' ./dist/backchannel-linux-x64 --mode=agent

  curl http://127.0.0.1:8080/    # reaches the service on 127.0.0.1:3000 at the edge

(<secret> is at least 16 characters. TLS is on by default: see README "Security model".)`);
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
  if (certDir !== null) rmSync(certDir, { recursive: true, force: true });
}
process.exit(code);
