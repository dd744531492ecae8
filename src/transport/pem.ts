/**
 * PEM files for TLS: reading them and checking what they hold, failing closed. Every failure is a TunnelError
 * ERR_TLS_CONFIG naming the variable and path, never the content (a key file's text could end up in a log).
 * Also the SHA-256 pin of a certificate (SPEC.md §6).
 */
import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import { TunnelError } from "../errors.ts";

/** Reads a PEM file named by `variable`; undefined when `path` is null. Throws ERR_TLS_CONFIG if unreadable. */
export async function readPem(variable: string, path: string | null): Promise<string | undefined> {
  if (path === null) return undefined;
  try {
    return await Bun.file(path).text();
  } catch (e) {
    throw new TunnelError("ERR_TLS_CONFIG", `${variable}: cannot read ${path}`, { cause: e });
  }
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates in a PEM text; throws ERR_TLS_CONFIG if there is none or one does not parse. */
export function certificates(variable: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw new TunnelError("ERR_TLS_CONFIG", `${variable}: ${path} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new TunnelError("ERR_TLS_CONFIG", `${variable}: certificate ${i + 1} in ${path} does not parse`);
    }
  });
}

/** A certificate chain file and its key file, by variable name and path, with their text. */
export interface PemPair {
  certVar: string;
  certPath: string;
  cert: string;
  keyVar: string;
  keyPath: string;
  key: string;
}

/** Checks that a chain and a key belong together; returns the leaf certificate. Throws ERR_TLS_CONFIG. */
export function checkPair(p: PemPair): X509Certificate {
  const [leaf] = certificates(p.certVar, p.certPath, p.cert);
  let keyObject;
  try {
    keyObject = createPrivateKey(p.key);
  } catch {
    // The parser's message is not passed on: it could quote part of the file.
    throw new TunnelError("ERR_TLS_CONFIG", `${p.keyVar}: ${p.keyPath} holds no usable unencrypted PEM private key`);
  }
  if (leaf === undefined || !leaf.checkPrivateKey(keyObject)) {
    throw new TunnelError("ERR_TLS_CONFIG", `${p.keyVar}: ${p.keyPath} is not the key of the certificate in ${p.certVar}`);
  }
  return leaf;
}

/**
 * The pin of a certificate (SPEC.md §6): `sha256:` and the standard base64 of the SHA-256 digest of its DER
 * SubjectPublicKeyInfo, as `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
 * -binary | base64` prints it. It survives renewals that keep the key.
 */
export function certificatePin(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("base64")}`;
}
