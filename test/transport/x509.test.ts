/** transport/x509.ts: the hand-built self-signed certificate parses (Node/Bun and openssl), verifies, and says what it was asked to. */
import { describe, expect, test } from "bun:test";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NO_EXPIRY, certificatePem, selfSignedCertificate } from "../../src/transport/x509.ts";

const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });

function make(commonName: string, notBefore: Date, notAfter: Date): X509Certificate {
  return new X509Certificate(certificatePem(selfSignedCertificate(keys.privateKey, keys.publicKey, { commonName, notBefore, notAfter })));
}

describe("selfSignedCertificate", () => {
  test("a v3 certificate for the key, self-signed, with the name, validity and a positive random serial", () => {
    const from = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const a = make("backchannel-server", from, NO_EXPIRY);
    expect(a.subject).toBe("CN=backchannel-server");
    expect(a.issuer).toBe("CN=backchannel-server");
    expect(new Date(a.validFrom).getTime()).toBe(from.getTime());
    expect(a.validTo).toBe("Dec 31 23:59:59 9999 GMT");
    expect(a.verify(keys.publicKey)).toBe(true);
    expect(a.checkPrivateKey(keys.privateKey)).toBe(true);
    expect(a.ca).toBe(false);
    expect(a.keyUsage).toContain("1.3.6.1.5.5.7.3.1"); // extKeyUsage serverAuth
    expect(a.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(make("backchannel-server", from, NO_EXPIRY).serialNumber).not.toBe(a.serialNumber);
  });

  test("UTCTime up to 2049, GeneralizedTime from 2050; long names use long DER lengths", () => {
    const c = make("x".repeat(300), new Date(Date.UTC(2049, 11, 31, 23, 59, 59)), new Date(Date.UTC(2050, 0, 1)));
    expect(c.validFrom).toBe("Dec 31 23:59:59 2049 GMT");
    expect(c.validTo).toBe("Jan  1 00:00:00 2050 GMT");
    expect(c.subject).toBe(`CN=${"x".repeat(300)}`);
  });

  test("openssl reads it strictly and verifies its signature", async () => {
    const dir = mkdtempSync(join(tmpdir(), "backchannel-x509-"));
    try {
      const file = join(dir, "c.pem");
      writeFileSync(file, certificatePem(selfSignedCertificate(keys.privateKey, keys.publicKey, {
        commonName: "backchannel-server", notBefore: new Date(Date.now() - 60_000), notAfter: NO_EXPIRY,
      })));
      const run = (args: string[]) => Bun.spawnSync(["openssl", ...args], { stdout: "pipe", stderr: "pipe" });
      expect(run(["asn1parse", "-in", file, "-strictpem"]).exitCode).toBe(0);
      const text = run(["x509", "-in", file, "-noout", "-text"]).stdout.toString();
      expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
      expect(text).toContain("CA:FALSE");
      expect(run(["verify", "-CAfile", file, file]).stdout.toString()).toContain(": OK");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("only EC keys", () => {
    const ed = generateKeyPairSync("ed25519");
    expect(() => selfSignedCertificate(ed.privateKey, ed.publicKey, { commonName: "x", notBefore: new Date(), notAfter: NO_EXPIRY })).toThrow(TypeError);
  });
});
