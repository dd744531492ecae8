/**
 * TLS material made with the `openssl` command-line tool (Debian: `apt-get install openssl`; present on most
 * systems): CAs and leaf certificates, ECDSA P-256 keys written unencrypted with mode 0600. Shared by
 * `npm run gen-certs` (scripts/gen-certs.ts), the demo, the benchmark and the tests (test/support/certs.ts), which
 * also make expired certificates and certificates from another CA. Every maker throws if openssl fails.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
