/**
 * The benchmark's load generators (visitor side), run inside the benchmark process (scripts/bench/main.ts) against
 * either the target's own ports (direct path) or the server's route ports (tunnel path). Each returns figures measured
 * at the receiver; none of them asserts anything. Loopback only.
 */
import type { Socket } from "bun";

const HOST = "127.0.0.1";
const BLOCK = new Uint8Array(256 * 1024);
crypto.getRandomValues(BLOCK.subarray(0, 65536));
for (let o = 65536; o < BLOCK.length; o += 65536) BLOCK.copyWithin(o, 0, 65536);
const REQUEST = BLOCK.slice(0, 1024);

/** Result of a throughput run. */
export interface Throughput {
  /** Bytes per second at the receiver over its measuring window. */
  bytesPerSec: number;
  /** Every byte moved during the run (for CPU per GiB). */
  bytesTotal: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One visitor that writes 256 KiB blocks as fast as the socket takes them until the time `until()` returns (ms,
 * performance.now), then half-closes, and resolves with the sink's JSON report (its shape is the caller's `R`).
 * Shared by the loopback and the WAN load generators.
 */
export function uploadOne<R>(port: number, until: () => number): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let off = 0;
    let stopped = false;
    let reply = "";
    const pump = (s: Socket<undefined>) => {
      while (!stopped) {
        if (performance.now() >= until()) {
          stopped = true;
          s.shutdown();
          return;
        }
        const n = s.write(BLOCK, off, BLOCK.length - off);
        if (n < 0) return;
        off += n;
        if (off === BLOCK.length) off = 0;
        else return;
      }
    };
    Bun.connect({
      hostname: HOST,
      port,
      allowHalfOpen: true,
      socket: {
        open: pump,
        drain: pump,
        data(_s, chunk) {
          reply += Buffer.from(chunk).toString("latin1");
        },
        close(_s, err) {
          try {
            resolve(JSON.parse(reply) as R);
          } catch {
            reject(new Error(`upload: no report from the sink (${err ? String(err) : "closed"})`));
          }
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
}

/**
 * Upload: `streams` visitors each write as fast as the socket takes for `ms`, then half-close; the sink answers
 * with its byte count and first/last byte times. Throughput = all bytes / (last byte − first byte) at the sink.
 */
export async function upload(port: number, streams: number, ms: number): Promise<Throughput> {
  const stopAt = performance.now() + ms;
  const one = () => uploadOne<{ bytes: number; firstMs: number; lastMs: number }>(port, () => stopAt);
  const reports = await Promise.all(Array.from({ length: streams }, one));
  let bytes = 0;
  let first = Infinity;
  let last = -Infinity;
  for (const r of reports) {
    bytes += r.bytes;
    first = Math.min(first, r.firstMs);
    last = Math.max(last, r.lastMs);
  }
  return { bytesPerSec: (bytes / (last - first)) * 1000, bytesTotal: bytes };
}

/**
 * Download: `streams` visitors read what the source writes. The window opens once every stream has received a
 * byte and lasts `ms`; throughput = bytes received in the window / its length. Then all visitors reset.
 */
export async function download(port: number, streams: number, ms: number): Promise<Throughput> {
  let total = 0;
  let started = 0;
  const sockets: Socket<{ got: number; done: boolean }>[] = [];
  const closed: Promise<void>[] = [];
  let fail: Error | null = null;
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
            if (err && !s.data.done) fail = err;
            onClose();
          },
        },
      }),
    );
  }
  const deadline = performance.now() + 10_000;
  while (started < streams && fail === null) {
    if (performance.now() > deadline) throw new Error("download: a stream never received a byte");
    await sleep(1);
  }
  const t0 = performance.now();
  const b0 = total;
  await sleep(ms);
  const t1 = performance.now();
  const b1 = total;
  for (const s of sockets) {
    s.data.done = true;
    s.terminate();
  }
  await Promise.all(closed);
  if (fail !== null) throw fail;
  return { bytesPerSec: ((b1 - b0) / (t1 - t0)) * 1000, bytesTotal: total };
}

/** Round-trip latencies of 1 KiB echoes, µs. */
export interface Latency {
  p50: number;
  p99: number;
  p999: number;
  count: number;
  reqPerSec: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/**
 * 1 KiB request/response over one connection to an echo service. `rate` > 0: requests start on a fixed schedule
 * of `rate` per second (a late one goes at once; latency counts from the actual send). `rate` = 0: closed loop,
 * the next request goes as soon as the previous answer is complete. 200 unmeasured warm-up requests first.
 */
export async function echoLatency(port: number, rate: number, ms: number): Promise<Latency> {
  const samples = new Float64Array(Math.max(1024, rate > 0 ? Math.ceil((rate * ms) / 1000) + 16 : 400_000));
  let count = 0;
  let got = 0;
  let sentAt = 0;
  let warm = 200;
  let measuring = false;
  let t0 = 0;
  let endAt = 0;
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let finish!: (v: Latency) => void;
  let failed!: (e: Error) => void;
  const done = new Promise<Latency>((res, rej) => {
    finish = res;
    failed = rej;
  });
  const interval = rate > 0 ? 1000 / rate : 0;
  const send = (s: Socket<undefined>) => {
    timer = null;
    got = 0;
    sentAt = performance.now();
    s.write(REQUEST);
  };
  const next = (s: Socket<undefined>) => {
    const now = performance.now();
    if (!measuring) {
      if (--warm > 0) return send(s);
      measuring = true;
      t0 = now;
      endAt = now + ms;
      seq = 0;
    } else if (now >= endAt) {
      const sorted = samples.subarray(0, count).sort();
      finish({
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        p999: percentile(sorted, 0.999),
        count,
        reqPerSec: (count / (now - t0)) * 1000,
      });
      s.end(); // may call close() synchronously: the promise is settled first
      return;
    }
    if (interval === 0) return send(s);
    const due = t0 + seq++ * interval;
    const wait = due - now;
    if (wait <= 0) send(s);
    else timer = setTimeout(send, wait, s);
  };
  const socket = await Bun.connect({
    hostname: HOST,
    port,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.setNoDelay(true);
      },
      data(s, chunk: Uint8Array) {
        got += chunk.byteLength;
        if (got < REQUEST.byteLength) return;
        if (measuring && count < samples.length) samples[count++] = (performance.now() - sentAt) * 1000;
        next(s);
      },
      close(_s, err) {
        if (timer !== null) clearTimeout(timer);
        failed(new Error(`echo connection closed early${err ? `: ${String(err)}` : ""}`));
      },
    },
  });
  send(socket);
  return done;
}

/** Result of a connection-rate run. */
export interface ConnRate {
  perSec: number;
  completed: number;
  failed: number;
}

/**
 * New connections per second: `workers` loops of connect → 1 KiB request → 1 KiB echo → close (FIN both ways);
 * each loop starts its next connection when the previous one is closed.
 */
export async function connRate(port: number, workers: number, ms: number): Promise<ConnRate> {
  let completed = 0;
  let failed = 0;
  const endAt = performance.now() + ms;
  const one = () =>
    new Promise<boolean>((resolve) => {
      let got = 0;
      Bun.connect({
        hostname: HOST,
        port,
        allowHalfOpen: true,
        socket: {
          binaryType: "uint8array",
          open(s) {
            s.write(REQUEST);
          },
          data(s, chunk: Uint8Array) {
            got += chunk.byteLength;
            if (got >= REQUEST.byteLength) s.end();
          },
          close(_s, err) {
            resolve(got >= REQUEST.byteLength && !err);
          },
          connectError() {
            resolve(false);
          },
        },
      }).catch(() => resolve(false));
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < endAt) {
        if (await one()) completed++;
        else failed++;
      }
    }),
  );
  const t1 = performance.now();
  return { perSec: (completed / (t1 - t0)) * 1000, completed, failed };
}

/** Idle visitor connections held open. */
export interface IdleHold {
  readonly count: number;
  /** Closes every connection (FIN) and resolves when all are closed. */
  close(): Promise<void>;
}

/**
 * Opens `n` connections to an echo service (at most `concurrency` connecting at once), each sends one byte and
 * waits for its echo (so the whole path is established), then stays idle.
 */
export async function holdIdle(port: number, n: number, concurrency = 256): Promise<IdleHold> {
  const sockets: Socket<undefined>[] = [];
  const closes: Promise<void>[] = [];
  const openOne = () =>
    new Promise<void>((resolve, reject) => {
      let echoed = false;
      let onClose!: () => void;
      closes.push(new Promise<void>((r) => (onClose = r)));
      Bun.connect({
        hostname: HOST,
        port,
        allowHalfOpen: true,
        socket: {
          open(s) {
            s.write("x");
          },
          data(s) {
            if (!echoed) {
              echoed = true;
              sockets.push(s);
              resolve();
            }
          },
          close(_s, err) {
            onClose();
            if (!echoed) reject(new Error(`idle stream closed before its echo${err ? `: ${String(err)}` : ""}`));
          },
          connectError(_s, err) {
            onClose();
            reject(err);
          },
        },
      }).catch(reject);
    });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        next++;
        await openOne();
      }
    }),
  );
  return {
    count: sockets.length,
    async close() {
      for (const s of sockets) s.end();
      await Promise.all(closes);
    },
  };
}
