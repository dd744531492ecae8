/**
 * The server's self-signed TLS identity, for TLS without a PKI: made once in TUNNEL_STATE_DIR (directory mode 0700,
 * `server-key.pem` 0600, `server-cert.pem` 0644) and reused on every later start, so its pin (SPEC.md §6) stays
 * the same. An ECDSA P-256 key and a certificate (CN `backchannel-server`, no expiry) built by transport/x509.ts:
 * no openssl command is needed.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, linkSync, mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TunnelError } from "../errors.ts";
import { logger } from "../log.ts";
import { checkPair, readPem } from "./pem.ts";
import { NO_EXPIRY, certificatePem, selfSignedCertificate } from "./x509.ts";

const log = logger("tls");

/** File names inside TUNNEL_STATE_DIR. */
export const IDENTITY_FILES = { cert: "server-cert.pem", key: "server-key.pem" } as const;

/** A server identity as PEM text. */
export interface Identity {
  cert: string;
  key: string;
  /** Paths of the two files. */
  certPath: string;
  keyPath: string;
  /** True if this start made it. */
  created: boolean;
}

const VAR = "TUNNEL_STATE_DIR";

/**
 * The identity in `stateDir`: loaded if both files exist (checked like TUNNEL_TLS_CERT/KEY); a key without its
 * certificate gets a new certificate for that key (same pin); with neither, both are made. Throws TunnelError
 * ERR_TLS_CONFIG (naming TUNNEL_STATE_DIR) for a certificate without its key, files that do not belong together,
 * or a directory that cannot be made or written. A key file readable by others is logged at warn.
 */
export async function loadOrCreateIdentity(stateDir: string): Promise<Identity> {
  const certPath = join(stateDir, IDENTITY_FILES.cert);
  const keyPath = join(stateDir, IDENTITY_FILES.key);
  if (existsSync(certPath) && !existsSync(keyPath)) {
    throw new TunnelError("ERR_TLS_CONFIG", `${VAR}: ${certPath} exists but ${keyPath} does not; restore the key, or remove both for a new identity (a new pin)`);
  }
  if (!existsSync(keyPath)) {
    const made = writing(stateDir, () => createIdentity(stateDir, certPath, keyPath));
    if (made !== null) return made;
  }
  const key = (await readPem(VAR, keyPath)) ?? "";
  if ((statSync(keyPath).mode & 0o077) !== 0) log.warn("the TLS key file is readable by other users: chmod 600 it", { keyPath });
  if (!existsSync(certPath)) {
    // Left by a start that stopped between the two writes: the key (and so the pin) is kept.
    const privateKey = parseKey(keyPath, key);
    const der = certificateFor(privateKey, createPublicKey(privateKey));
    writing(stateDir, () => writeAtomically(certPath, certificatePem(der), 0o644, true));
    log.info("made a new certificate for the existing TLS key (the pin is unchanged)", { certPath });
  }
  const cert = (await readPem(VAR, certPath)) ?? "";
  checkPair({ certVar: VAR, certPath, cert, keyVar: VAR, keyPath, key });
  return { cert, key, certPath, keyPath, created: false };
}

/** Runs a file-system step; its failure becomes ERR_TLS_CONFIG naming the directory. */
function writing<T>(stateDir: string, step: () => T): T {
  try {
    return step();
  } catch (e) {
    throw new TunnelError("ERR_TLS_CONFIG", `${VAR}: cannot write the TLS identity in ${stateDir}: ${(e as Error).message}`, { cause: e });
  }
}

function parseKey(keyPath: string, key: string): KeyObject {
  try {
    return createPrivateKey(key);
  } catch {
    throw new TunnelError("ERR_TLS_CONFIG", `${VAR}: ${keyPath} holds no usable unencrypted PEM private key`);
  }
}

/** The certificate of the identity: CN backchannel-server, backdated an hour (a peer's slow clock), no expiry. */
function certificateFor(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  return selfSignedCertificate(privateKey, publicKey, {
    commonName: "backchannel-server",
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: NO_EXPIRY,
  });
}

/** Makes and writes a new identity; null if another process wrote its key first (then that identity is used). */
function createIdentity(stateDir: string, certPath: string, keyPath: string): Identity | null {
  if (!existsSync(stateDir)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    chmodSync(stateDir, 0o700); // mkdir's mode is filtered by the umask
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const cert = certificatePem(certificateFor(privateKey, publicKey));
  // Each file is written whole under a temporary name first. The key goes in first and never replaces one (a
  // hard link fails if the name exists): of two servers starting on one directory, one key wins, and a
  // certificate made by either is for that key, so the pin is one. An interrupted start leaves at most a key,
  // from which the next start remakes the certificate.
  if (!writeAtomically(keyPath, key, 0o600, false)) return null;
  writeAtomically(certPath, cert, 0o644, true);
  return { cert, key, certPath, keyPath, created: true };
}

/** Writes `path` whole via a temporary file; without `replace`, returns false (writing nothing) if it exists. */
function writeAtomically(path: string, text: string, mode: number, replace: boolean): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode, flag: "w" });
  chmodSync(tmp, mode);
  if (replace) {
    renameSync(tmp, path);
    return true;
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === "EEXIST") return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}
