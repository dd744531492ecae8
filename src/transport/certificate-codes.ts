/** TLS error codes of the certificate checks a pin replaces (transport/tcp.ts Dial). */
/**
 * The codes of certificate-path and name checks (X509_V_ERR_* as Node and Bun name them, and the name mismatch):
 * errors of checks a `verifyServer` replaces, not of the TLS handshake itself (test/security/bun-tls-facts.test.ts).
 */
export const CERTIFICATE_CHECK_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY", "CERT_SIGNATURE_FAILURE", "CERT_NOT_YET_VALID", "CERT_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD", "ERROR_IN_CERT_NOT_AFTER_FIELD", "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN", "CERT_CHAIN_TOO_LONG", "INVALID_CA", "PATH_LENGTH_EXCEEDED", "INVALID_PURPOSE",
  "CERT_UNTRUSTED", "CERT_REJECTED", "HOSTNAME_MISMATCH", "ERR_TLS_CERT_ALTNAME_INVALID",
]);
