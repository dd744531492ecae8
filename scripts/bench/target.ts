/**
 * The benchmark's target ("the edge service"), run as its own process by the benchmark (scripts/bench/main.ts) so that
 * its work is not charged to the load generator. It listens on loopback port 0 with four services:
 *
 * - sink: reads and discards; on the visitor's FIN answers one JSON line
 *   `{"bytes":n,"firstMs":t,"lastMs":t,"bucketMs":100,"buckets":{"<index>":bytes,…}}` (first and last byte times on
 *   this process's clock; bytes per 100 ms interval, index = floor(time / 100), for steady-state windows) and closes;
 * - source: writes a 256 KiB random block over and over, with backpressure, until the peer goes away;
 * - echo: writes back everything it reads (backpressure: pause while a write is queued), FIN after FIN;
 * - http: a tiny HTTP/1.1 answer (Bun.serve), for wrk.
 *
 * Talks to its parent over IPC: sends `{ports}` once, answers `{type:"stats"}` with `{active}` (open sockets).
 */
import type { Socket } from "bun";
import { flushQueue, writeOrQueue } from "../../test/support/write-queue.ts";

interface SinkState {
  kind: "sink";
  bytes: number;
  firstMs: number;
  lastMs: number;
  /** Bytes per {@link BUCKET_MS} interval, by floor(time / BUCKET_MS). */
  buckets: Record<number, number>;
}

/** Width of the sink's arrival histogram, ms. */
const BUCKET_MS = 100;
interface SourceState {
  kind: "source";
  off: number;
  done: boolean;
}
interface EchoState {
  kind: "echo";
  queue: Uint8Array[];
  ended: boolean;
}
type State = SinkState | SourceState | EchoState;

let active = 0;
const BLOCK = new Uint8Array(256 * 1024);
crypto.getRandomValues(BLOCK.subarray(0, 65536));
for (let o = 65536; o < BLOCK.length; o += 65536) BLOCK.copyWithin(o, 0, 65536);

function pumpSource(s: Socket<State>): void {
  const st = s.data as SourceState;
  while (!st.done) {
    const n = s.write(BLOCK, st.off, BLOCK.length - st.off);
    if (n < 0) {
      st.done = true;
      return;
    }
    st.off += n;
    if (st.off === BLOCK.length) st.off = 0;
    else return; // short write: wait for drain
  }
}

function flushEcho(s: Socket<State>): void {
  const st = s.data as EchoState;
  if (!flushQueue(s, st.queue)) return;
  s.resume();
  if (st.ended) s.shutdown();
}

function listenKind(kind: State["kind"]): number {
  const l = Bun.listen<State>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(s) {
        active++;
        s.setNoDelay(true);
        if (kind === "sink") s.data = { kind, bytes: 0, firstMs: 0, lastMs: 0, buckets: {} };
        else if (kind === "echo") s.data = { kind, queue: [], ended: false };
        else {
          s.data = { kind, off: 0, done: false };
          pumpSource(s);
        }
      },
      data(s, chunk: Uint8Array) {
        const st = s.data;
        if (st.kind === "sink") {
          const now = performance.now();
          if (st.bytes === 0) st.firstMs = now;
          st.lastMs = now;
          st.bytes += chunk.byteLength;
          const b = Math.floor(now / BUCKET_MS);
          st.buckets[b] = (st.buckets[b] ?? 0) + chunk.byteLength;
        } else if (st.kind === "echo") {
          if (!writeOrQueue(s, st.queue, chunk)) s.pause();
        }
      },
      drain(s) {
        const st = s.data;
        if (st.kind === "source") pumpSource(s);
        else if (st.kind === "echo") flushEcho(s);
      },
      end(s) {
        const st = s.data;
        if (st.kind === "sink") {
          s.write(`${JSON.stringify({ bytes: st.bytes, firstMs: st.firstMs, lastMs: st.lastMs, bucketMs: BUCKET_MS, buckets: st.buckets })}\n`);
          s.shutdown();
        } else if (st.kind === "echo") {
          st.ended = true;
          if (st.queue.length === 0) s.shutdown();
        } else {
          st.done = true;
          s.end();
        }
      },
      close(s) {
        active--;
        if (s.data?.kind === "source") s.data.done = true;
      },
      error() {},
    },
  });
  return l.port;
}

const HELLO = "hello from the benchmark target\n";
const http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(HELLO) });

const ports = { sink: listenKind("sink"), source: listenKind("source"), echo: listenKind("echo"), http: http.port };
process.send?.({ type: "ports", ports });
process.on("message", (m: { type?: string }) => {
  if (m?.type === "stats") process.send?.({ type: "stats", active });
});
process.on("disconnect", () => process.exit(0));
