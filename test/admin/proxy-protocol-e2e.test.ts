/**
 * PROXY protocol through the tunnel: a target behind `proxy=v2` (and one behind `proxy=v1`) receives the visitor's
 * address and port, then the visitor's bytes, byte-exact; a service without `proxy=` gets the bytes alone.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { PROXY_V2_SIGNATURE } from "../../src/agent/proxy-protocol.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

/** A target that records everything it receives on each connection and closes when the visitor does. */
function recordingTarget(): { port: number; received: Promise<Uint8Array>; stop(): void } {
  const chunks: Uint8Array[] = [];
  let done!: (b: Uint8Array) => void;
  const received = new Promise<Uint8Array>((r) => (done = r));
  const l: TCPSocketListener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      data(_s, d) {
        chunks.push(new Uint8Array(d));
      },
      end(s: Socket) {
        done(Buffer.concat(chunks));
        s.end();
      },
    },
  });
  return { port: l.port, received, stop: () => l.stop(true) };
}

const targets: { stop(): void }[] = [];
afterEach(stopAll);
afterAll(() => targets.forEach((t) => t.stop()));

/** Connects a visitor that sends `payload` at once and half-closes; resolves with its own local port. */
async function visit(port: number, payload: string): Promise<number> {
  const s = await Bun.connect({ hostname: "127.0.0.1", port, allowHalfOpen: true, socket: { data() {} } });
  s.write(payload);
  s.shutdown();
  return s.localPort;
}

const be16 = (n: number) => [n >>> 8, n & 0xff];

test("proxy=v2 and proxy=v1 targets get the visitor's address first, then its bytes; no proxy= gets bytes only", async () => {
  const v2 = recordingTarget();
  const v1 = recordingTarget();
  const plain = recordingTarget();
  targets.push(v2, v1, plain);
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/v2,127.0.0.1:0=edge/v1,127.0.0.1:0=edge/plain",
  });
  await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_SERVICES: `v2=127.0.0.1:${v2.port};proxy=v2,v1=127.0.0.1:${v1.port};proxy=v1,plain=127.0.0.1:${plain.port}`,
  });
  const [r2, r1, r0] = srv.routePorts as [number, number, number];

  // The visitor's bytes are sent before the agent has even dialled the target: the header must still come first.
  const p2 = await visit(r2, "hello v2");
  expect(await v2.received).toEqual(Uint8Array.from([
    ...PROXY_V2_SIGNATURE,
    0x21, 0x11, ...be16(12), // v2 PROXY, TCP over IPv4, 12 address bytes
    127, 0, 0, 1, // source: the visitor
    127, 0, 0, 1, // destination: the route listener
    ...be16(p2), ...be16(r2),
    ...new TextEncoder().encode("hello v2"),
  ]));

  const p1 = await visit(r1, "hello v1");
  expect(new TextDecoder().decode(await v1.received)).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${p1} ${r1}\r\nhello v1`);

  await visit(r0, "hello plain");
  expect(new TextDecoder().decode(await plain.received)).toBe("hello plain");
}, 20_000);
