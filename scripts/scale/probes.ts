/**
 * What the scale kit measures from outside the server: admin endpoint timings (/api/status, /metrics, /healthz),
 * a /healthz prober that runs through a transition, an RSS peak sampler, and visitors that send a seeded pattern
 * through a route and verify the echo byte for byte (the swarm echoes every stream).
 */
import { flushQueue, writeOrQueue } from "../../test/support/write-queue.ts";
import { PatternSource, PatternVerifier } from "../../test/support/pattern.ts";
import { rssKiB } from "../lib/proc.ts";

/** One timed GET: latency (ms), body size (bytes) and status; status 0 if it failed. */
export interface Timed {
  ms: number;
  bytes: number;
  status: number;
}

/** GETs `url` and reads the whole body, within `timeoutMs`. */
export async function timedGet(url: string, timeoutMs = 10_000): Promise<Timed> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.arrayBuffer();
    return { ms: performance.now() - t0, bytes: body.byteLength, status: res.status };
  } catch {
    return { ms: performance.now() - t0, bytes: 0, status: 0 };
  }
}

/** Median of a list (NaN if empty). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** `n` GETs one after another: median and largest latency, and the size of the last body. */
export async function timedGets(url: string, n: number): Promise<{ medianMs: number; maxMs: number; bytes: number; failed: number }> {
  const runs: Timed[] = [];
  for (let i = 0; i < n; i++) runs.push(await timedGet(url));
  const ok = runs.filter((r) => r.status === 200);
  return { medianMs: median(ok.map((r) => r.ms)), maxMs: Math.max(...ok.map((r) => r.ms)), bytes: ok.at(-1)?.bytes ?? 0, failed: n - ok.length };
}

/** Asks /healthz back to back (a pause of `gapMs` between answers) until stopped; keeps every latency. */
export class HealthProber {
  private running = true;
  private readonly done: Promise<void>;
  readonly latencies: number[] = [];
  failures = 0;

  constructor(adminUrl: string, gapMs = 10) {
    this.done = (async () => {
      while (this.running) {
        const r = await timedGet(`${adminUrl}/healthz`, 5_000);
        if (r.status === 200) this.latencies.push(r.ms);
        else this.failures++;
        await Bun.sleep(gapMs);
      }
    })();
  }

  /** Stops; resolves with the count, the largest and the 99th percentile latency (ms). */
  async stop(): Promise<{ count: number; maxMs: number; p99Ms: number; failures: number }> {
    this.running = false;
    await this.done;
    const s = [...this.latencies].sort((a, b) => a - b);
    return { count: s.length, maxMs: s.at(-1) ?? NaN, p99Ms: s[Math.floor(s.length * 0.99)] ?? s.at(-1) ?? NaN, failures: this.failures };
  }
}

/** Samples a process's VmRSS every `everyMs` and keeps the peak (KiB). */
export class RssPeak {
  peakKiB = 0;
  private readonly timer: Timer;

  constructor(private readonly pid: number, everyMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    const v = rssKiB(this.pid);
    this.peakKiB = Math.max(this.peakKiB, v);
    return v;
  }

  stop(): number {
    clearInterval(this.timer);
    return this.peakKiB;
  }
}

/**
 * How one visitor ended: `ok` (every byte echoed and verified), `refused` (the connect failed: nothing listens),
 * `unrouted` (accepted, then closed before any echo byte: no agent took it), `broken` (closed mid-echo, or a byte
 * differed), `timeout`.
 */
export type VisitOutcome = "ok" | "refused" | "unrouted" | "broken" | "timeout";

const CHUNK = 64 * 1024;

/** One visitor: connects to host:port, sends `bytes` of the seed's pattern, verifies the echo, closes. */
export function visit(host: string, port: number, bytes: number, seed: number, timeoutMs = 15_000): Promise<VisitOutcome> {
  return new Promise((resolve) => {
    const src = new PatternSource(seed);
    const check = new PatternVerifier(seed);
    const queue: Uint8Array[] = [];
    let outcome: VisitOutcome | null = null;
    const finish = (o: VisitOutcome) => {
      if (outcome !== null) return;
      outcome = o;
      clearTimeout(timer);
      resolve(o);
    };
    const pump = (s: { write(b: Uint8Array): number }) => {
      while (src.produced < bytes && flushQueue(s, queue)) writeOrQueue(s, queue, src.next(Math.min(CHUNK, bytes - src.produced), true));
    };
    let sock: { end(): void; terminate(): void } | null = null;
    const timer = setTimeout(() => {
      finish("timeout");
      sock?.terminate();
    }, timeoutMs);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          sock = s;
          pump(s);
        },
        drain: (s) => pump(s),
        data(s, chunk) {
          check.push(chunk);
          if (check.firstMismatch >= 0 || check.received > bytes) {
            finish("broken");
            s.terminate();
          } else if (check.received === bytes) {
            finish("ok");
            s.end();
          }
        },
        close: () => finish(check.received === 0 ? "unrouted" : "broken"),
        connectError: () => finish("refused"),
      },
    }).catch(() => finish("refused"));
  });
}

/** Tallies of a visitor run. */
export type VisitTally = Record<VisitOutcome, number> & { total: number };

/** An empty tally. */
export const noVisits = (): VisitTally => ({ total: 0, ok: 0, refused: 0, unrouted: 0, broken: 0, timeout: 0 });

/** Adds `b` to `a`. */
export function addVisits(a: VisitTally, b: VisitTally): VisitTally {
  return { total: a.total + b.total, ok: a.ok + b.ok, refused: a.refused + b.refused, unrouted: a.unrouted + b.unrouted, broken: a.broken + b.broken, timeout: a.timeout + b.timeout };
}

/** `n` visitors, at most `concurrency` at once, each `bytes` long (seeds from `seed`). */
export async function visitors(host: string, port: number, n: number, opts: { bytes: number; concurrency: number; seed: number }): Promise<VisitTally> {
  const tally = noVisits();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const o = await visit(host, port, opts.bytes, opts.seed * 100_003 + i);
      tally[o]++;
      tally.total++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, opts.concurrency) }, worker));
  return tally;
}

/** Visitors one after another (`concurrency` lanes) until `stop()`: a steady load through a transition. */
export class VisitorLoad {
  private running = true;
  readonly tally = noVisits();
  private readonly done: Promise<void>;

  constructor(host: string, port: number, opts: { bytes: number; concurrency: number; seed: number; gapMs: number }) {
    let i = 0;
    const lane = async () => {
      while (this.running) {
        const o = await visit(host, port, opts.bytes, opts.seed * 100_003 + i++, 5_000);
        this.tally[o]++;
        this.tally.total++;
        await Bun.sleep(opts.gapMs);
      }
    };
    this.done = Promise.all(Array.from({ length: opts.concurrency }, lane)).then(() => {});
  }

  async stop(): Promise<VisitTally> {
    this.running = false;
    await this.done;
    return this.tally;
  }
}

/** "ok/total" and the failures by kind, e.g. `200/200` or `190/200 (10 unrouted)`. */
export function visitText(t: VisitTally): string {
  const bad = (["refused", "unrouted", "broken", "timeout"] as const).filter((k) => t[k] > 0).map((k) => `${t[k]} ${k}`);
  return `${t.ok}/${t.total}${bad.length > 0 ? ` (${bad.join(", ")})` : ""}`;
}
