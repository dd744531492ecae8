/**
 * What Bun 1.4.5 does with TLS, as transport/tcp.ts, transport/tls.ts and server/handshake.ts rely on it
 * (bun-platform.md §1.8). If a Bun upgrade changes one of these, this file says which assumption broke.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { testCerts } from "../support/certs.ts";

let pem: Record<string, string> = {};
const listeners: TCPSocketListener<unknown>[] = [];

beforeAll(async () => {
  const c = testCerts();
  const read = (p: string) => Bun.file(p).text();
  pem = {
    ca: await read(c.ca.cert),
    serverCert: await read(c.server.cert),
    serverKey: await read(c.server.key),
    expiredCert: await read(c.serverExpired.cert),
    expiredKey: await read(c.serverExpired.key),
    agentCert: await read(c.agent.cert),
    agentKey: await read(c.agent.key),
    otherAgentCert: await read(c.agentOther.cert),
    otherAgentKey: await read(c.agentOther.key),
  };
});
afterEach(() => {
  for (const l of listeners.splice(0)) l.stop(true);
});

type Ev = { name: string; args: unknown[] };

function tlsListener(opts: { handshake: boolean; cert?: string; key?: string; clientCa?: boolean }, events: Ev[]) {
  const socket: Record<string, unknown> = {
    open: (s: Socket) => events.push({ name: "open", args: [s.authorized] }),
    data: () => {},
    close: () => events.push({ name: "close", args: [] }),
  };
  if (opts.handshake) {
    socket.handshake = (s: Socket, ok: boolean, err: Error | null) =>
      events.push({ name: "handshake", args: [ok, s.authorized, (err as { code?: string } | null)?.code ?? null, s.getPeerCertificate?.()?.subject?.CN ?? null] });
  }
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: opts.cert ?? pem.serverCert,
      key: opts.key ?? pem.serverKey,
      ...(opts.clientCa ? { ca: pem.ca, requestCert: true, rejectUnauthorized: false } : {}),
    },
    socket: socket as never,
  });
  listeners.push(l as TCPSocketListener<unknown>);
  return l;
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await Bun.sleep(5);
}

test("a TLS listener with a handshake handler fires open at TCP accept; without one, only after the TLS handshake", async () => {
  for (const withHandler of [true, false]) {
    const events: Ev[] = [];
    const l = tlsListener({ handshake: withHandler }, events);
    const raw = await Bun.connect({ hostname: "127.0.0.1", port: l.port, socket: { data() {} } });
    await Bun.sleep(150);
    expect(events.some((e) => e.name === "open")).toBe(withHandler);
    raw.end();
  }
});

test("client: Bun.connect resolves before verification, the handshake event carries the verdict", async () => {
  const cases = [
    { cert: pem.serverCert, key: pem.serverKey, ca: pem.ca, serverName: undefined, ok: true, code: null },
    { cert: pem.expiredCert, key: pem.expiredKey, ca: pem.ca, serverName: undefined, ok: false, code: "CERT_HAS_EXPIRED" },
    { cert: pem.serverCert, key: pem.serverKey, ca: pem.ca, serverName: "wrong.example", ok: false, code: "ERR_TLS_CERT_ALTNAME_INVALID" },
    { cert: pem.serverCert, key: pem.serverKey, ca: undefined, serverName: undefined, ok: false, code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" },
  ];
  for (const c of cases) {
    const l = tlsListener({ handshake: false, cert: c.cert, key: c.key }, []);
    let verdict = null as [boolean, string | null] | null;
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port: l.port,
      tls: { rejectUnauthorized: true, ...(c.ca ? { ca: c.ca } : {}), ...(c.serverName ? { serverName: c.serverName } : {}) },
      socket: {
        data() {},
        handshake(_s, ok, err) {
          verdict = [ok, (err as { code?: string } | null)?.code ?? null];
        },
      },
    });
    // Resolved even when verification is about to fail: the promise is not a verdict.
    expect(s.readyState).toBe(1);
    await until(() => verdict !== null);
    expect(verdict).toEqual([c.ok, c.code]);
    s.end();
  }
});

test("server with requestCert and rejectUnauthorized false: the handshake completes, socket.authorized decides", async () => {
  const cases = [
    { cert: pem.agentCert, key: pem.agentKey, authorized: true, cn: "edge-1" },
    { cert: undefined, key: undefined, authorized: false, cn: null },
    { cert: pem.otherAgentCert, key: pem.otherAgentKey, authorized: false, cn: "edge-1" },
  ];
  for (const c of cases) {
    const events: Ev[] = [];
    const l = tlsListener({ handshake: true, clientCa: true }, events);
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port: l.port,
      tls: { ca: pem.ca, ...(c.cert ? { cert: c.cert, key: c.key } : {}) },
      socket: { data() {} },
    });
    await until(() => events.some((e) => e.name === "handshake"));
    const hs = events.find((e) => e.name === "handshake");
    // ok is true in every case: only `authorized` tells a verified client certificate from none or a foreign one.
    expect(hs?.args[0]).toBe(true);
    expect(hs?.args[1]).toBe(c.authorized);
    if (c.cn) expect(hs?.args[3]).toBe(c.cn);
    // The open event came first, before anything was known.
    expect(events[0]?.name).toBe("open");
    expect(events[0]?.args[0]).toBe(false);
    s.end();
  }
});

test("client with rejectUnauthorized false: a certificate not naming the host gives ok=false with the check's error, the session is up", async () => {
  // transport/tcp.ts relies on this for pinned servers (TUNNEL_TLS_PIN): such an `ok` false is not a TLS failure.
  const cases = [
    { serverName: "localhost", ok: true },
    { serverName: "wrong.example", ok: false },
  ];
  for (const c of cases) {
    const l = tlsListener({ handshake: false }, []);
    let seen = null as { ok: boolean; code: string | null; version: string; peer: boolean } | null;
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port: l.port,
      tls: { rejectUnauthorized: false, serverName: c.serverName },
      socket: {
        data() {},
        handshake(sock, ok, err) {
          const code = (err as { code?: string } | null)?.code ?? null;
          seen = { ok, code, version: sock.getTLSVersion(), peer: sock.getPeerX509Certificate() !== undefined };
        },
      },
    });
    await until(() => seen !== null);
    // No CA given: the chain check fails either way; only the name decides `ok`.
    expect(seen).toEqual({ ok: c.ok, code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE", version: "TLSv1.3", peer: true });
    expect(s.readyState).toBe(1);
    s.end();
  }
});

test("listener: reload() ignores new TLS options; a stopped listener's sockets live on until stop(true)", async () => {
  // transport/listener.ts setTls relies on both: certificate reload binds a new listener and retires the old one.
  const c = testCerts();
  const otherCert = await Bun.file(c.serverOther.cert).text();
  const otherKey = await Bun.file(c.serverOther.key).text();
  const echoed: string[] = [];
  const handlers = { data: (s: Socket, d: Uint8Array) => void s.write(d), open() {} };
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, tls: { cert: pem.serverCert, key: pem.serverKey }, socket: handlers });
  listeners.push(l as TCPSocketListener<unknown>);
  const subject = (port: number) => new Promise<string>((resolve) => {
    void Bun.connect({ hostname: "127.0.0.1", port, tls: { rejectUnauthorized: false }, socket: {
      data() {},
      handshake(s) {
        resolve(s.getPeerX509Certificate()?.issuer ?? "");
        s.end();
      },
    } });
  });
  const before = await subject(l.port);
  (l as unknown as { reload(o: unknown): void }).reload({ socket: handlers, tls: { cert: otherCert, key: otherKey } });
  expect(await subject(l.port)).toBe(before);

  let closed = false;
  const held = await new Promise<Socket>((resolve) => {
    void Bun.connect({ hostname: "127.0.0.1", port: l.port, tls: { rejectUnauthorized: false }, socket: {
      data: (_s, d) => void echoed.push(Buffer.from(d).toString()),
      close: () => void (closed = true),
      handshake: (s) => resolve(s),
    } });
  });
  l.stop(false);
  held.write("still here");
  await until(() => echoed.join("") === "still here");
  expect(echoed.join("")).toBe("still here");
  l.stop(true);
  await until(() => closed);
  expect(closed).toBe(true);
});
