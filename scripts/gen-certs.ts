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
 * own PKI where you have one. The functions are exported for tests, which also make expired certificates and
 * certificates from another CA.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** A certificate and its key, as file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** Options for one leaf certificate. */
export interface LeafOptions {
  /** Subject CN. */
  cn: string;
  /** subjectAltName entries, e.g. `["DNS:localhost", "IP:127.0.0.1"]`. */
  san?: string[];
  /** `server` (serverAuth) or `client` (clientAuth). */
  usage: "server" | "client";
  /** Validity in days from now (default 825). Ignored with `expired`. */
  days?: number;
  /** Valid only in 2020: expired now. */
  expired?: boolean;
}

/** True if the openssl CLI can be run. */
export function opensslAvailable(): boolean {
  try {
    return Bun.spawnSync(["openssl", "version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    throw new Error(`openssl ${args[0]} failed (exit ${r.exitCode}): ${r.stderr.toString().trim()}`);
  }
}

function newKey(path: string, cwd: string): void {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path], cwd);
  chmodSync(path, 0o600);
}

/** Makes a CA (`<name>.pem`, `<name>-key.pem`) in `dir`. */
export function makeCa(dir: string, name = "ca", cn = "Backchannel test CA"): CertFiles {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  newKey(key, dir);
  openssl(
    [
      "req", "-x509", "-new", "-key", key, "-sha256", "-days", "3650", "-subj", `/CN=${cn}`,
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-out", cert,
    ],
    dir,
  );
  return { cert, key };
}

/** Makes a leaf certificate (`<name>.pem`, `<name>-key.pem`) in `dir`, signed by `ca`. */
export function makeLeaf(dir: string, name: string, ca: CertFiles, opts: LeafOptions): CertFiles {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  newKey(key, dir);
  // `openssl ca` (not `x509 -req`) because only it can set a past validity for expired certificates.
  const work = mkdtempSync(join(tmpdir(), "backchannel-ca-"));
  try {
    writeFileSync(join(work, "index.txt"), "");
    writeFileSync(join(work, "serial"), `${Bun.randomUUIDv7().replaceAll("-", "").slice(0, 16)}\n`);
    writeFileSync(
      join(work, "ca.cnf"),
      [
        "[ca]", "default_ca = d",
        "[d]", "database = index.txt", "new_certs_dir = .", "serial = serial", "default_md = sha256",
        "policy = p", "unique_subject = no", "email_in_dn = no",
        "[p]", "commonName = supplied",
        "[ext]", "basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage = ${opts.usage === "server" ? "serverAuth" : "clientAuth"}`,
        ...(opts.san && opts.san.length > 0 ? [`subjectAltName = ${opts.san.join(",")}`] : []),
        "",
      ].join("\n"),
    );
    openssl(["req", "-new", "-key", key, "-subj", `/CN=${opts.cn}`, "-out", "req.csr"], work);
    const validity = opts.expired
      ? ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
      : ["-days", String(opts.days ?? 825)];
    openssl(
      ["ca", "-batch", "-notext", "-config", "ca.cnf", "-extensions", "ext", "-cert", ca.cert, "-keyfile", ca.key,
        "-in", "req.csr", "-out", cert, ...validity],
      work,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { cert, key };
}

/** What {@link generateCerts} writes. */
export interface GeneratedCerts {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
  agent: CertFiles;
}

/** Makes a CA, a server certificate (localhost, 127.0.0.1) and an agent certificate (CN = agentName) in `dir`. */
export function generateCerts(dir: string, opts: { agentName?: string; days?: number } = {}): GeneratedCerts {
  const ca = makeCa(dir);
  const server = makeLeaf(dir, "server", ca, {
    cn: "localhost", san: ["DNS:localhost", "IP:127.0.0.1"], usage: "server", days: opts.days,
  });
  const agent = makeLeaf(dir, "agent", ca, { cn: opts.agentName ?? "agent", usage: "client", days: opts.days });
  return { dir, ca, server, agent };
}

function usage(): never {
  process.stderr.write("usage: npm run gen-certs -- <dir> [--agent-name=NAME] [--days=N]\n");
  process.exit(2);
}

if (import.meta.main) {
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
}
