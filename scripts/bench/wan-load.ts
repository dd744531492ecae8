/**
 * Load generators of the WAN benchmark (`npm run bench -- --wan`, scripts/bench/wan.ts), run in the bench process
 * against the target's services through the emulated link or through a tunnel whose agent dials the server through
 * it. Unlike scripts/bench/load.ts they measure steady state: every transfer first runs for a warm-up (windows,
 * queues and buffers fill) and only then opens the measuring window. Figures are taken at the receiver. Nothing is
 * asserted here.
 */
import type { Socket } from "bun";
import { uploadOne as uploadSink } from "./load.ts";

const HOST = "127.0.0.1";
const BLOCK = new Uint8Array(256 * 1024);
crypto.getRandomValues(BLOCK.subarray(0, 65536));
for (let o = 65536; o < BLOCK.length; o += 65536) BLOCK.copyWithin(o, 0, 65536);
const REQUEST = BLOCK.slice(0, 1024);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The sink's report (scripts/bench/target.ts). */
interface SinkReport {
  bytes: number;
  firstMs: number;
  bucketMs: number;
  buckets: Record<string, number>;
}

/** One visitor that writes 256 KiB blocks as fast as the socket takes them until `until`, then half-closes. */
function uploadOne(port: number, until: () => number): Promise<SinkReport> {
  return uploadSink<SinkReport>(port, until);
}

/**
 * Upload: `streams` visitors write as fast as their sockets take for `warmMs + ms` plus a round trip and a margin,
 * then half-close. The sink counts arrivals in 100 ms buckets; the window is `ms` (rounded down to buckets) starting
 * `warmMs` after the last stream's first byte arrived. Bytes per second over that window, all streams.
 */
export async function uploadSteady(port: number, streams: number, warmMs: number, ms: number, rttMs: number): Promise<number> {
  const until = performance.now() + warmMs + ms + rttMs + 500;
  const reports = await Promise.all(Array.from({ length: streams }, () => uploadOne(port, () => until)));
  const bucketMs = reports[0]?.bucketMs ?? 100;
  const from = Math.ceil((Math.max(...reports.map((r) => r.firstMs)) + warmMs) / bucketMs);
  const n = Math.max(1, Math.floor(ms / bucketMs));
  let bytes = 0;
  for (const r of reports) for (let b = from; b < from + n; b++) bytes += r.buckets[b] ?? 0;
  return (bytes / (n * bucketMs)) * 1000;
}

/** Visitors reading what the source writes, counting bytes. */
interface Readers {
  /** Bytes received so far, all streams. */
  total(): number;
  /** Resolves once every stream has received a byte (throws after 10 s or if one closes first). */
  started(): Promise<void>;
  /** Resets every stream and waits for them to close; throws if one had failed before. */
  close(): Promise<void>;
}

async function openReaders(port: number, streams: number): Promise<Readers> {
  let total = 0;
  let started = 0;
  let fail: Error | null = null;
  const sockets: Socket<{ got: number; done: boolean }>[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < streams; i++) {
    let onClose!: () => void;
    closed.push(new Promise<void>((r) => (onClose = r)));
    sockets.push(
      await Bun.connect<{ got: number; done: boolean }>({
        hostname: HOST,
        port,
        data: { got: 0, done: false },
        socket: {
          binaryType: "uint8array",
          data(s, chunk: Uint8Array) {
            if (s.data.got === 0) started++;
            s.data.got += chunk.byteLength;
            total += chunk.byteLength;
          },
          close(s, err) {
            if (!s.data.done) fail = err ?? new Error("download: a stream closed early");
            onClose();
          },
        },
      }),
    );
  }
  return {
    total: () => total,
    async started() {
      const deadline = performance.now() + 10_000;
      while (started < streams) {
        if (fail !== null) throw fail;
        if (performance.now() > deadline) throw new Error("download: a stream never received a byte");
        await sleep(1);
      }
    },
    async close() {
      for (const s of sockets) {
        s.data.done = true;
        s.terminate();
      }
      await Promise.all(closed);
      if (fail !== null) throw fail;
    },
  };
}

/** Download: `streams` visitors read; after every stream's first byte and `warmMs`, bytes per second over `ms`. */
export async function downloadSteady(port: number, streams: number, warmMs: number, ms: number): Promise<number> {
  const r = await openReaders(port, streams);
  try {
    await r.started();
    await sleep(warmMs);
    const t0 = performance.now();
    const b0 = r.total();
    await sleep(ms);
    return ((r.total() - b0) / (performance.now() - t0)) * 1000;
  } finally {
    await r.close();
  }
}

/** Latency of 1 KiB echoes while a bulk download runs. */
export interface LoadedEcho {
  /** Round trip percentiles, ms. */
  p50: number;
  p99: number;
  max: number;
  count: number;
  /** Requests without an answer when the wait ended (counted in the percentiles at the time waited). */
  unanswered: number;
  /** The bulk stream's rate over the echo window, bytes per second. */
  bulkBytesPerSec: number;
}

/** A pipelined echo client: requests go on a schedule, answers are matched by byte count (the echo keeps order). */
async function pipelinedEcho(port: number) {
  const sentAt: number[] = [];
  const latencies: number[] = [];
  let got = 0;
  let closedEarly: Error | null = null;
  let measureFrom = Infinity;
  const sock = await Bun.connect({
    hostname: HOST,
    port,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.setNoDelay(true);
      },
      data(_s, chunk: Uint8Array) {
        const now = performance.now();
        const before = Math.floor(got / REQUEST.byteLength);
        got += chunk.byteLength;
        for (let k = before; k < Math.floor(got / REQUEST.byteLength); k++) {
          if ((sentAt[k] as number) >= measureFrom) latencies.push(now - (sentAt[k] as number));
        }
      },
      close(_s, err) {
        closedEarly = new Error(`echo connection closed early${err ? `: ${String(err)}` : ""}`);
      },
    },
  });
  return {
    send(measured: boolean) {
      const now = performance.now();
      if (measured && measureFrom === Infinity) measureFrom = now;
      sentAt.push(now);
      sock.write(REQUEST);
    },
    answered: () => Math.floor(got / REQUEST.byteLength),
    sent: () => sentAt.length,
    latencies,
    /** Send times of the measured requests not answered yet. */
    pending: () => sentAt.slice(Math.floor(got / REQUEST.byteLength)).filter((t) => t >= measureFrom),
    error: () => closedEarly,
    end: () => sock.end(),
  };
}

/**
 * 1 KiB echoes on one connection to `echoPort`, `perSec` requests per second on a fixed schedule (pipelined:
 * a request does not wait for the previous answer), while one visitor downloads from `bulkPort`. One unmeasured
 * echo first; the echoes are measured for `ms` once the download has run for `warmMs`; then the answers are
 * awaited for up to `waitMs`.
 */
export async function echoUnderLoad(echoPort: number, bulkPort: number, warmMs: number, ms: number, perSec = 100, waitMs = 5_000): Promise<LoadedEcho> {
  const bulk = await openReaders(bulkPort, 1);
  let echo: Awaited<ReturnType<typeof pipelinedEcho>> | null = null;
  try {
    await bulk.started();
    const warmEnd = performance.now() + warmMs;
    echo = await pipelinedEcho(echoPort);
    echo.send(false);
    while (echo.answered() < 1) {
      if (echo.error()) throw echo.error();
      if (performance.now() > warmEnd + waitMs) throw new Error("echo: no answer to the first request");
      await sleep(1);
    }
    await sleep(Math.max(0, warmEnd - performance.now()));
    const t0 = performance.now();
    const b0 = bulk.total();
    const interval = 1000 / perSec;
    for (let k = 0; ; k++) {
      const due = t0 + k * interval;
      if (due >= t0 + ms) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      echo.send(true);
    }
    const t1 = performance.now();
    const bulkBytesPerSec = ((bulk.total() - b0) / (t1 - t0)) * 1000;
    const stopWaiting = performance.now() + waitMs;
    while (echo.answered() < echo.sent() && performance.now() < stopWaiting && !echo.error()) await sleep(2);
    const now = performance.now();
    const pending = echo.pending();
    const all = [...echo.latencies, ...pending.map((t) => now - t)].sort((a, b) => a - b);
    const pct = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))] ?? NaN;
    return { p50: pct(0.5), p99: pct(0.99), max: all[all.length - 1] ?? NaN, count: all.length, unanswered: pending.length, bulkBytesPerSec };
  } finally {
    echo?.end();
    await bulk.close();
  }
}
