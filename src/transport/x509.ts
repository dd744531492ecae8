/**
 * A minimal self-signed X.509 v3 certificate, DER-encoded by hand: Bun 1.4.5 (like Node) parses certificates
 * (crypto.X509Certificate) but cannot make one, and the compiled binary must not need the openssl command. Only
 * what the server's own identity needs (RFC 5280 §4.1): ECDSA P-256 with SHA-256, a CN, a validity, basic
 * constraints (not a CA), key usage and extended key usage (TLS server). Pure apart from the signature.
 */
import { randomBytes, sign, type KeyObject } from "node:crypto";

/** One DER TLV: tag byte, definite length, contents. */
function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  let head: number[];
  if (n < 0x80) head = [tag, n];
  else if (n < 0x100) head = [tag, 0x81, n];
  else if (n < 0x10000) head = [tag, 0x82, n >> 8, n & 0xff];
  else throw new RangeError("x509: DER value over 64 KiB"); // never for a certificate made here
  return Buffer.concat([Buffer.from(head), body]);
}

const seq = (...parts: Uint8Array[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Uint8Array[]): Buffer => tlv(0x31, ...parts);

/** An OBJECT IDENTIFIER from its dotted form (every arc < 2^28). */
function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [a = 0, b = 0, ...rest] = arcs;
  const out = [40 * a + b];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) base128.unshift((v & 0x7f) | 0x80);
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian bytes (minimal: leading zeros dropped, a 0 added before a high bit). */
function integer(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(0x02, (v[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), to the second, in UTC. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), "latin1")) : tlv(0x18, Buffer.from(digits, "latin1"));
}

/** An Extension: extnID, critical (only written when true), extnValue wrapping `value`. */
function extension(id: string, critical: boolean, value: Uint8Array): Buffer {
  return seq(oid(id), ...(critical ? [Buffer.from([0x01, 0x01, 0xff])] : []), tlv(0x04, value));
}

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
/** The end of the validity for "no well-defined expiration date" (RFC 5280 §4.1.2.5). */
export const NO_EXPIRY = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

/** What a self-signed certificate says. */
export interface SelfSignedOptions {
  /** Subject and issuer CN. */
  commonName: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A self-signed certificate for `publicKey` (an EC P-256 key pair), signed with `privateKey`, as DER. The serial
 * number is 16 random bytes (positive). Throws if the key is not an EC key.
 */
export function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, opts: SelfSignedOptions): Buffer {
  if (privateKey.asymmetricKeyType !== "ec") throw new TypeError("x509: only EC (P-256) keys are supported");
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f || 0x01;
  const name = seq(set(seq(oid("2.5.4.3"), tlv(0x0c, Buffer.from(opts.commonName, "utf8")))));
  const algorithm = seq(oid(ECDSA_WITH_SHA256));
  const extensions = seq(
    extension("2.5.29.19", true, seq()), // basicConstraints: cA FALSE (the default, so empty)
    extension("2.5.29.15", true, tlv(0x03, Buffer.from([0x07, 0x80]))), // keyUsage: digitalSignature
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage: serverAuth
  );
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // [0] version v3
    integer(serial),
    algorithm,
    name, // issuer = subject: self-signed
    seq(time(opts.notBefore), time(opts.notAfter)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    tlv(0xa3, extensions), // [3] extensions
  );
  const signature = sign("sha256", tbs, privateKey); // ECDSA-Sig-Value, DER (the default dsaEncoding)
  return seq(tbs, algorithm, tlv(0x03, Buffer.from([0]), signature));
}

/** DER certificate → PEM text (64-column base64). */
export function certificatePem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
