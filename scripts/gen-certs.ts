/**
 * `npm run gen-certs -- <dir> [--agent-name=NAME] [--days=N]`: makes TLS material for Backchannel with the
 * `openssl` command-line tool (Debian: `apt-get install openssl`; present on most systems):
 *
 * - `ca.pem`, `ca-key.pem`: a CA (use it as the agent's TUNNEL_TLS_CA and the server's TUNNEL_TLS_CLIENT_CA)
 * - `server.pem`, `server-key.pem`: the server certificate, SAN `localhost` and `127.0.0.1` (serverAuth)
 * - `agent.pem`, `agent-key.pem`: an agent client certificate with CN = the agent name (clientAuth; for mtls
 *   clusters, `TUNNEL_CLUSTERS=name=mtls:<agent name>`)
 *
 * Keys are ECDSA P-256, unencrypted, written with mode 0600. Meant for tests, demos and small deployments; use your
 * own PKI where you have one. The makers themselves are in scripts/lib/certs.ts.
 */
import { resolve } from "node:path";
import { generateCerts, opensslAvailable } from "./lib/certs.ts";

function usage(): never {
  process.stderr.write("usage: npm run gen-certs -- <dir> [--agent-name=NAME] [--days=N]\n");
  process.exit(2);
}

let dir: string | undefined;
let agentName: string | undefined;
let days: number | undefined;
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--agent-name=")) agentName = arg.slice("--agent-name=".length);
  else if (arg.startsWith("--days=")) days = Number(arg.slice("--days=".length));
  else if (arg.startsWith("-") || dir !== undefined) usage();
  else dir = arg;
}
if (dir === undefined || (agentName !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(agentName))) usage();
if (days !== undefined && !(Number.isInteger(days) && days > 0)) usage();
if (!opensslAvailable()) {
  process.stderr.write("gen-certs: the openssl command is needed (Debian/Ubuntu: apt-get install openssl)\n");
  process.exit(1);
}
const out = generateCerts(resolve(dir), { agentName, days });
process.stdout.write(
  [
    `wrote to ${out.dir}:`,
    `  CA                 ${out.ca.cert}  (key ${out.ca.key})`,
    `  server (localhost) ${out.server.cert}  (key ${out.server.key})`,
    `  agent (CN=${agentName ?? "agent"})   ${out.agent.cert}  (key ${out.agent.key})`,
    "",
    "server: TUNNEL_TLS_CERT=server.pem TUNNEL_TLS_KEY=server-key.pem [TUNNEL_TLS_CLIENT_CA=ca.pem for mTLS]",
    "agent:  TUNNEL_TLS_CA=ca.pem [TUNNEL_TLS_CERT=agent.pem TUNNEL_TLS_KEY=agent-key.pem for mTLS]",
    "",
  ].join("\n"),
);
