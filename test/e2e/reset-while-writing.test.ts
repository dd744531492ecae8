/**
 * A target that resets its connection while the agent is writing to it must reach the visitor as a reset, never as
 * a clean end. Bun quirk (bun-platform.md §1.5, measured in the soak): when a peer's RST arrives while we write, the
 * write returns -1 and consumes the error, and Bun then reports the connection as a clean `end` + `close` with no
 * error. A relay that took that for a FIN forwarded a truncated stream as complete (found by the soak, scripts/soak/).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { PatternSource } from "../support/pattern.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const MiB = 1024 * 1024;

/** Accepts, writes 2 MiB and resets at once: the agent's first writes to it hit the reset. */
let target: TCPSocketListener<undefined>;
beforeAll(() => {
  target = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.write(new Uint8Array(2 * MiB));
        s.terminate();
      },
      data() {},
      error() {},
    },
  });
});
afterAll(() => target.stop(true));
afterEach(stopAll);

interface Seen {
  end: boolean;
  error: string | null;
  received: number;
}

/** Uploads 4 MiB at once (then only reads) and reports whether it saw a FIN and how the socket closed. */
function visitor(port: number): Promise<Seen> {
  const src = new PatternSource(9);
  let pending: Uint8Array | null = src.next(4 * MiB);
  const seen: Seen = { end: false, error: null, received: 0 };
  const pump = (s: Socket<undefined>) => {
    if (pending === null) return;
    const n = s.write(pending);
    if (n < 0) pending = null;
    else pending = n < pending.byteLength ? pending.subarray(n) : null;
  };
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open: pump,
        drain: pump,
        data(_s, d) {
          seen.received += d.byteLength;
        },
        end() {
          seen.end = true;
        },
        close(_s, err) {
          seen.error = err ? String((err as Error & { code?: string }).code ?? err.message) : null;
          resolve(seen);
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
}

test("a target reset while the agent writes to it reaches the visitor as a reset, not a clean end (20 streams)", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/rst" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `rst=127.0.0.1:${target.port}`, TUNNEL_CONNECTIONS: "1" });
  const port = srv.routePorts[0] as number;
  const results: Seen[] = [];
  for (let i = 0; i < 20; i++) results.push(await visitor(port));
  const clean = results.filter((r) => r.end || r.error === null);
  if (clean.length > 0) console.log(`${clean.length}/20 visitors saw a clean end: ${JSON.stringify(clean.slice(0, 3))}`);
  expect(clean.length).toBe(0);
}, 30_000);
