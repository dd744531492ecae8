/**
 * The userspace WAN link (scripts/lib/wan-link.ts) on loopback: bytes arrive exact and in order both ways, a round
 * trip takes at least the configured RTT, a transfer never beats the configured rate (upper bounds only, so a busy
 * machine cannot fail them), the rate is shared by every connection, the bottleneck queue stays bounded, and FIN
 * and reset cross the link.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { defaultQueueBytes, WanLink } from "../../scripts/lib/wan-link.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { PatternSource, PatternVerifier } from "../support/pattern.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function link(rttMs: number, mbit: number, queueBytes?: number): WanLink {
  const l = new WanLink({ rttMs, mbit, queueBytes });
  cleanups.push(() => l.close());
  return l;
}

function echo(): TestServer {
  const e = startEchoServer();
  cleanups.push(() => e.stop());
  return e;
}

/** What a sink saw on one connection. */
interface SinkConn {
  verifier: PatternVerifier;
  firstMs: number;
  lastMs: number;
  done: Promise<void>;
}

/** A sink that verifies each connection against the pattern of the seed its index names (seeds[i]). */
function sink(seeds: number[]): { port: number; conns: SinkConn[] } {
  const conns: SinkConn[] = [];
  const l: TCPSocketListener<SinkConn> = Bun.listen<SinkConn>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(s) {
        let finish!: () => void;
        const c: SinkConn = { verifier: new PatternVerifier(seeds[conns.length] ?? 0), firstMs: 0, lastMs: 0, done: new Promise<void>((r) => (finish = r)) };
        conns.push(c);
        s.data = c;
        (c as SinkConn & { finish: () => void }).finish = finish;
      },
      data(s, chunk: Uint8Array) {
        const now = performance.now();
        if (s.data.verifier.received === 0) s.data.firstMs = now;
        s.data.lastMs = now;
        s.data.verifier.push(chunk);
      },
      end(s) {
        s.shutdown();
        (s.data as SinkConn & { finish: () => void }).finish();
      },
    },
  });
  cleanups.push(() => l.stop(true));
  return { port: l.port, conns };
}

/** Sends `bytes` of the seed's pattern with backpressure, then half-closes; resolves when the socket closes. */
function send(port: number, seed: number, bytes: number): Promise<void> {
  const src = new PatternSource(seed);
  let sent = 0;
  let pending: Uint8Array | null = null;
  return new Promise((resolve, reject) => {
    const pump = (s: Socket<undefined>) => {
      for (;;) {
        if (pending === null) {
          if (sent >= bytes) return void s.shutdown();
          const n = Math.min(65_536, bytes - sent);
          pending = src.next(n);
          sent += n;
        }
        const w = s.write(pending);
        if (w < pending.byteLength) {
          pending = pending.subarray(Math.max(0, w));
          return;
        }
        pending = null;
      }
    };
    Bun.connect({ hostname: "127.0.0.1", port, allowHalfOpen: true, socket: { open: pump, drain: pump, data() {}, close: () => resolve(), connectError: (_s, e) => reject(e) } }).catch(reject);
  });
}

test("a 1-byte ping-pong takes at least the RTT and not much more; 1 MiB echoes back exact", async () => {
  const rtt = 40;
  const l = link(rtt, 200);
  const port = l.listen(echo().port);
  const samples = await pings(port, 8);
  expect(samples.length).toBe(8);
  for (const ms of samples) {
    expect(ms).toBeGreaterThanOrEqual(rtt);
    expect(ms).toBeLessThan(rtt + 50);
  }
  const r = await runVisitor({ port, seed: 1507, sendBytes: 1024 * 1024 });
  expect(r.ok).toBe(true);
  expect(r.received).toBe(1024 * 1024);
  expect(l.stats().up.bytesIn).toBe(8 + 1024 * 1024);
});

test("a bulk transfer does not beat the rate, and the bottleneck queue stays bounded", async () => {
  const mbit = 40; // 5 MB/s
  const queueBytes = 256 * 1024;
  const l = link(10, mbit, queueBytes);
  const s = sink([7]);
  const port = l.listen(s.port);
  const bytes = 4 * 1024 * 1024;
  await send(port, 7, bytes);
  const c = s.conns[0] as SinkConn;
  await c.done;
  expect(c.verifier.ok(bytes)).toBe(true);
  const rate = (bytes / (c.lastMs - c.firstMs)) * 1000;
  expect(rate).toBeLessThanOrEqual(1.1 * ((mbit * 1e6) / 8));
  const st = l.stats().up;
  // Full at some point (the sender was faster), and never more than one segment (≤ 64 KiB) above the limit.
  expect(st.peakQueuedBytes).toBeGreaterThan(queueBytes / 2);
  expect(st.peakQueuedBytes).toBeLessThanOrEqual(queueBytes + 64 * 1024);
});

test("connections share one rate; each arrives exact", async () => {
  const mbit = 40;
  const l = link(10, mbit, 128 * 1024);
  const s = sink([11, 12]);
  const port = l.listen(s.port);
  const bytes = 2 * 1024 * 1024;
  // Connect in order so that sink connection i has seed 11 + i.
  const first = send(port, 11, bytes);
  await waitFor(() => s.conns.length === 1, "first connection at the sink");
  const second = send(port, 12, bytes);
  await Promise.all([first, second]);
  await Promise.all(s.conns.map((c) => c.done));
  for (const c of s.conns) expect(c.verifier.ok(bytes)).toBe(true);
  const firstMs = Math.min(...s.conns.map((c) => c.firstMs));
  const lastMs = Math.max(...s.conns.map((c) => c.lastMs));
  expect(((2 * bytes) / (lastMs - firstMs)) * 1000).toBeLessThanOrEqual(1.1 * ((mbit * 1e6) / 8));
  expect(l.stats()).toMatchObject({ connections: 0, idle: true });
});

/** Round trips of `n` 1-byte pings on one new connection to `port`, ms. */
async function pings(port: number, n: number): Promise<number[]> {
  const samples: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let sentAt = 0;
    const ping = (s: Socket<undefined>) => {
      sentAt = performance.now();
      s.write("p");
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: ping,
        data(s) {
          samples.push(performance.now() - sentAt);
          if (samples.length < n) ping(s);
          else s.end();
        },
        close: () => resolve(),
        connectError: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
  return samples;
}

test("a ping behind a bulk sender waits for the shared queue, and for little more than it", async () => {
  const rtt = 20;
  const mbit = 40; // 5 MB/s: a 100 kB queue is 20 ms of link time
  const queueBytes = 100_000;
  const l = link(rtt, mbit, queueBytes);
  const s = sink([21]);
  const bulkPort = l.listen(s.port);
  const echoPort = l.listen(echo().port);
  const bulk = send(bulkPort, 21, 6 * 1024 * 1024);
  await waitFor(() => l.stats().up.queuedBytes > queueBytes / 2, "the bulk sender filled the queue");
  const samples = (await pings(echoPort, 5)).sort((a, b) => a - b);
  const median = samples[2] as number;
  // Behind the queue (FIFO, shared), but not behind the bulk sender's whole reads (round-robin admission).
  expect(median).toBeGreaterThanOrEqual(rtt + 10);
  expect(median).toBeLessThan(rtt + 20 + 40);
  await bulk;
  await (s.conns[0] as SinkConn).done;
  expect((s.conns[0] as SinkConn).verifier.ok(6 * 1024 * 1024)).toBe(true);
});

test("a reset crosses the link, after the bytes sent before it", async () => {
  const l = link(20, 100);
  let got = 0;
  let closed!: () => void;
  const closedP = new Promise<void>((r) => (closed = r));
  const target = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_s, chunk) {
        got += chunk.byteLength;
      },
      close: () => closed(),
    },
  });
  cleanups.push(() => target.stop(true));
  const port = l.listen(target.port);
  const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
  sock.write(new Uint8Array(1000));
  await waitFor(() => l.stats().up.bytesIn === 1000, "the link took the bytes");
  sock.terminate();
  await closedP;
  expect(got).toBe(1000);
  await waitFor(() => l.stats().connections === 0, "the link forgot the connection");
});

test("the default queue is one bandwidth-delay product plus 64 KiB; bad settings throw", () => {
  expect(defaultQueueBytes({ rttMs: 100, mbit: 300 })).toBe(3_750_000 + 65_536);
  expect(() => new WanLink({ rttMs: 10, mbit: 0 })).toThrow(/bad link settings/);
});
