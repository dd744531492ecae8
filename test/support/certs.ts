/**
 * TLS material for tests, made once per test process by scripts/lib/certs.ts (the openssl CLI) in a temp dir that
 * is removed at exit: a CA with a server certificate (localhost, 127.0.0.1) and an agent certificate (CN edge-1),
 * an expired server certificate from the same CA, and a second CA with its own server and agent certificates.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCerts, makeCa, makeLeaf, opensslAvailable, type CertFiles } from "../../scripts/lib/certs.ts";

/** Paths of every test certificate. */
export interface TestCerts {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
  /** Client certificate, CN `edge-1`, from `ca`. */
  agent: CertFiles;
  /** Client certificate, CN `edge-2`, from `ca`. */
  agent2: CertFiles;
  /** Server certificate from `ca` that expired in 2020. */
  serverExpired: CertFiles;
  /** Server certificate from `ca` for the name `localhost` only (no IP address in its SAN). */
  serverDnsOnly: CertFiles;
  otherCa: CertFiles;
  /** Server certificate (localhost, 127.0.0.1) from `otherCa`. */
  serverOther: CertFiles;
  /** Client certificate, CN `edge-1`, from `otherCa`. */
  agentOther: CertFiles;
}

let made: TestCerts | null = null;

/** The test certificates (made on first use). Throws if openssl is missing. */
export function testCerts(): TestCerts {
  if (made !== null) return made;
  if (!opensslAvailable()) throw new Error("the openssl command is needed for TLS tests (apt-get install openssl)");
  const dir = mkdtempSync(join(tmpdir(), "backchannel-certs-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const g = generateCerts(dir, { agentName: "edge-1" });
  const agent2 = makeLeaf(dir, "agent2", g.ca, { cn: "edge-2", usage: "client" });
  const serverExpired = makeLeaf(dir, "server-expired", g.ca, {
    cn: "localhost", san: ["DNS:localhost", "IP:127.0.0.1"], usage: "server", expired: true,
  });
  const serverDnsOnly = makeLeaf(dir, "server-dns-only", g.ca, { cn: "localhost", san: ["DNS:localhost"], usage: "server" });
  const otherCa = makeCa(dir, "other-ca", "Some other CA");
  const serverOther = makeLeaf(dir, "server-other", otherCa, {
    cn: "localhost", san: ["DNS:localhost", "IP:127.0.0.1"], usage: "server",
  });
  const agentOther = makeLeaf(dir, "agent-other", otherCa, { cn: "edge-1", usage: "client" });
  made = { dir, ca: g.ca, server: g.server, agent: g.agent, agent2, serverExpired, serverDnsOnly, otherCa, serverOther, agentOther };
  return made;
}

/** Server env for TLS with `server` (default the good certificate); `clientCa` turns on client certificates. */
export function serverTlsEnv(opts: { server?: CertFiles; clientCa?: CertFiles } = {}): Record<string, string> {
  const c = testCerts();
  const server = opts.server ?? c.server;
  return {
    TUNNEL_TLS: "on",
    TUNNEL_TLS_CERT: server.cert,
    TUNNEL_TLS_KEY: server.key,
    ...(opts.clientCa ? { TUNNEL_TLS_CLIENT_CA: opts.clientCa.cert } : {}),
  };
}

/** Agent env for TLS trusting `ca` (default the test CA), with an optional client certificate. */
export function agentTlsEnv(opts: { ca?: CertFiles; client?: CertFiles; serverName?: string } = {}): Record<string, string> {
  const c = testCerts();
  return {
    TUNNEL_TLS: "on",
    TUNNEL_TLS_CA: (opts.ca ?? c.ca).cert,
    ...(opts.client ? { TUNNEL_TLS_CERT: opts.client.cert, TUNNEL_TLS_KEY: opts.client.key } : {}),
    ...(opts.serverName ? { TUNNEL_TLS_SERVER_NAME: opts.serverName } : {}),
  };
}
