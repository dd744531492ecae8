/**
 * connect() settles exactly once with the documented code: refused (nothing listens), timeout (a peer that accepts TCP
 * but never answers the TLS handshake: the deadline covers TLS), TLS failure (a server of another CA), success.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, IGNORING_OWNER } from "../../src/transport/tcp.ts";
import { listen } from "../../src/transport/listener.ts";
import { isTunnelError } from "../../src/errors.ts";
import { testCerts } from "../support/certs.ts";

/** A port on which nothing listens (bound, then released). */
function closedPort(): number {
  const l = listen({ host: "127.0.0.1", port: 0, accept: () => IGNORING_OWNER });
  const port = l.port;
  l.stop(true);
  return port;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("connect resolved");
}

describe("connect", () => {
  test("nothing listens: ERR_CONNECT_REFUSED", async () => {
    const e = await rejection(connect({ host: "127.0.0.1", port: closedPort(), timeoutMs: 5_000, owner: IGNORING_OWNER }));
    expect(isTunnelError(e, "ERR_CONNECT_REFUSED")).toBe(true);
  });

  test("a TCP peer that never answers the TLS handshake: ERR_CONNECT_TIMEOUT after the deadline", async () => {
    const silent = listen({ host: "127.0.0.1", port: 0, accept: () => IGNORING_OWNER });
    try {
      const started = performance.now();
      const e = await rejection(connect({ host: "127.0.0.1", port: silent.port, tls: { rejectUnauthorized: true }, timeoutMs: 300, owner: IGNORING_OWNER }));
      expect(isTunnelError(e, "ERR_CONNECT_TIMEOUT")).toBe(true);
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      silent.stop(true);
    }
  });

  test("a TLS server from another CA: ERR_TLS with the reason; the same server with its CA: connected", async () => {
    const c = testCerts();
    const tls = { cert: readFileSync(c.serverOther.cert, "utf8"), key: readFileSync(c.serverOther.key, "utf8") };
    const server = listen({ host: "127.0.0.1", port: 0, tls, accept: () => IGNORING_OWNER });
    try {
      const wrongCa = { ca: readFileSync(c.ca.cert, "utf8"), serverName: "localhost" };
      const e = await rejection(connect({ host: "127.0.0.1", port: server.port, tls: wrongCa, timeoutMs: 5_000, owner: IGNORING_OWNER }));
      expect(isTunnelError(e, "ERR_TLS")).toBe(true);
      const rightCa = { ca: readFileSync(c.otherCa.cert, "utf8"), serverName: "localhost" };
      const s = await connect({ host: "127.0.0.1", port: server.port, tls: rightCa, timeoutMs: 5_000, owner: IGNORING_OWNER });
      expect(s.authorized).toBe(true);
      s.terminate();
    } finally {
      server.stop(true);
    }
  });
});
