/** Handshake statuses as the server writes them, checked on the wire bytes of the response. */
import { afterEach, describe, expect, test } from "bun:test";
import { encodeHandshake, type ConnectionInitInfo } from "../../src/protocol/handshake.ts";
import { makeCredential } from "../../src/auth/credential.ts";
import { server, stopAll } from "../support/tunnel.ts";

afterEach(stopAll);

const SECRET = "s3cret-token-0123456789";
const HMAC_SECRET = "hmac-secret-abcdefghijklmnop";

/** Sends raw bytes to the agent port and collects everything until the server closes. */
function exchange(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.write(bytes);
        },
        data(_s, d) {
          chunks.push(new Uint8Array(d));
        },
        close() {
          resolve(Buffer.concat(chunks));
        },
        connectError(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);
  });
}

function info(overrides: Partial<ConnectionInitInfo>): Uint8Array {
  return encodeHandshake({
    flag: 1,
    body: {
      cluster_name: "edge",
      weight: 10,
      host_name: "h1",
      credential_policy: "token",
      credential: SECRET,
      extra: { backchannel: { version: 1, role: "data", slot: 0, instance: "i", window: 1 << 20, max_frame: 1 << 18 } },
      ...overrides,
    },
  });
}

/** The exact bytes MOSN writes for a bare status response. */
function mosnStatus(status: number): string {
  const body = Buffer.from(`{"status":${status}}`);
  return Buffer.concat([Buffer.from([0x20, 0x88, 0x01, 0x02, 0x02, 0x00, 0x00, body.byteLength]), body]).toString("hex");
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

describe("handshake statuses on the wire", () => {
  const clusters = `edge=token:${SECRET},signed=hmac-sha256:${HMAC_SECRET}`;

  test("wrong credential → 2", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    const out = await exchange(srv.agentPort, info({ credential: "wrong-token-wrong-token" }));
    expect(hex(out)).toBe(mosnStatus(2));
  });

  test("unknown policy → 3, and a policy the cluster does not require → 3", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    expect(hex(await exchange(srv.agentPort, info({ credential_policy: "magic" })))).toBe(mosnStatus(3));
    expect(hex(await exchange(srv.agentPort, info({ credential_policy: "none" })))).toBe(mosnStatus(3));
  });

  test("unknown cluster → 4", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    expect(hex(await exchange(srv.agentPort, info({ cluster_name: "nope" })))).toBe(mosnStatus(4));
  });

  test("a MOSN agent (no extra.backchannel) → 16, never stream frames", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    expect(hex(await exchange(srv.agentPort, info({ extra: null })))).toBe(mosnStatus(16));
  });

  test("success → 1 with a connection id, MOSN's header layout", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    const bytes = info({});
    const chunks: Uint8Array[] = [];
    let sock: { end(): void } | null = null;
    await new Promise<void>((resolve, reject) => {
      Bun.connect({
        hostname: "127.0.0.1",
        port: srv.agentPort,
        socket: {
          open(s) {
            sock = s;
            s.write(bytes);
          },
          data(_s, d) {
            chunks.push(new Uint8Array(d));
            const all = Buffer.concat(chunks);
            if (all.byteLength >= 8 && all.byteLength >= 8 + all.readUInt16BE(6)) resolve();
          },
          connectError(_s, e) {
            reject(e);
          },
        },
      }).catch(reject);
    });
    const all = Buffer.concat(chunks);
    expect([...all.subarray(0, 6)]).toEqual([0x20, 0x88, 0x01, 0x02, 0x02, 0x00]);
    const len = all.readUInt16BE(6);
    const body = JSON.parse(all.subarray(8, 8 + len).toString("utf8"));
    expect(all.subarray(8, 8 + 11).toString()).toBe('{"status":1');
    expect(body.status).toBe(1);
    expect(typeof body.connection_id).toBe("string");
    expect(body.backchannel.version).toBe(1);
    (sock as { end(): void } | null)?.end();
  });

  test("hmac-sha256: fresh credential accepted, replay and stale refused", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    const cred = makeCredential("hmac-sha256", HMAC_SECRET, "signed", "h1", "plaintext");
    const signed = (credential: string) => info({ cluster_name: "signed", credential_policy: "hmac-sha256", credential });
    const first = await new Promise<number>((resolve) => {
      Bun.connect({
        hostname: "127.0.0.1",
        port: srv.agentPort,
        socket: {
          open(s) {
            s.write(signed(cred));
          },
          data(s, d) {
            // The response's body is length-prefixed: frames may follow it in the same chunk (a PING, SPEC.md §2.2).
            const b = Buffer.from(d);
            resolve(JSON.parse(b.subarray(8, 8 + b.readUInt16BE(6)).toString()).status);
            s.end();
          },
        },
      });
    });
    expect(first).toBe(1);
    expect(hex(await exchange(srv.agentPort, signed(cred)))).toBe(mosnStatus(2));
    const stale = makeCredential("hmac-sha256", HMAC_SECRET, "signed", "h1", "plaintext", Date.now() - 10 * 60_000);
    expect(hex(await exchange(srv.agentPort, signed(stale)))).toBe(mosnStatus(2));
  });

  test("garbage → 18 and closed; the server stays up", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: clusters });
    const out = await exchange(srv.agentPort, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    expect(hex(out)).toBe(mosnStatus(18));
    expect(hex(await exchange(srv.agentPort, info({ cluster_name: "nope" })))).toBe(mosnStatus(4));
  });
});
