/**
 * The benchmark's figures: one value per round for every figure and path, and the tests that produce them
 * (throughput up and down over 1 and 8 streams with the RSS and CPU of the two processes in the path, paced and
 * closed-loop echo latency, new connections per second).
 */
import { cpuSeconds, rssKiB } from "../lib/proc.ts";
import { connRate, download, echoLatency, upload, type Throughput } from "./load.ts";
import { CONN_WORKERS, MiB, PACED_RATE, PARALLEL, type BenchOptions } from "./options.ts";
import type { Ports, Procs } from "./processes.ts";

/** Median of `v`; NaN if empty. */
export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Every figure measured so far, the peak RSS per path, and the errors of failed runs. */
export class Figures {
  /** figure → path → one value per round. */
  readonly results = new Map<string, Map<string, number[]>>();
  /** path → peak RSS of its two processes during throughput runs, KiB. */
  readonly peakKiB = new Map<string, [number, number]>();
  readonly errors: string[] = [];

  /** Adds one value of `figure` on `path`. */
  record(figure: string, path: string, value: number): void {
    let byPath = this.results.get(figure);
    if (!byPath) this.results.set(figure, (byPath = new Map()));
    let vals = byPath.get(path);
    if (!vals) byPath.set(path, (vals = []));
    vals.push(value);
  }

  /** Median of `figure` on `path`; NaN if not measured. */
  med(figure: string, path: string): number {
    return median(this.results.get(figure)?.get(path) ?? []);
  }

  /** Raises the peak RSS of `path`'s processes to `peak` where higher. */
  notePeak(path: string, peak: number[]): void {
    const old = this.peakKiB.get(path) ?? [0, 0];
    this.peakKiB.set(path, [Math.max(old[0], peak[0] ?? 0), Math.max(old[1], peak[1] ?? 0)]);
  }
}

/** One path from visitor to target: direct, through a tunnel pair, or through reference relays. */
export interface PathDef {
  name: string;
  ports: Ports;
  /** The two processes in the path (null for the direct path and socat). */
  pair: Procs | null;
}

/** One test, run once per round on every path. */
export interface TestDef {
  id: string;
  run(path: PathDef): Promise<void>;
}

/** Samples the peak RSS of some processes every 50 ms while a run is going on; the returned function stops it. */
function sampleRss(pids: number[]): () => number[] {
  const peak = pids.map(rssKiB);
  const t = setInterval(() => {
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i] as number, rssKiB(p))));
  }, 50);
  return () => {
    clearInterval(t);
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i] as number, rssKiB(p))));
    return peak;
  };
}

function throughputTest(f: Figures, ms: number, id: string, label: string, dir: "up" | "down", streams: number): TestDef {
  return {
    id,
    async run(path) {
      const pids = path.pair ? path.pair.pids : [];
      const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const stop = sampleRss(pids);
      let r: Throughput;
      try {
        r = dir === "up" ? await upload(path.ports.sink, streams, ms) : await download(path.ports.source, streams, ms);
      } finally {
        const peak = stop();
        if (path.pair) {
          f.notePeak(path.name, peak);
          const idle = path.pair.idleKiB;
          f.record(`RSS peak above idle (MiB), ${label}: server`, path.name, ((peak[0] ?? 0) - idle[0]) / 1024);
          f.record(`RSS peak above idle (MiB), ${label}: agent`, path.name, ((peak[1] ?? 0) - idle[1]) / 1024);
        }
      }
      f.record(`${label} (MB/s)`, path.name, r.bytesPerSec / 1e6);
      if (path.pair) {
        const cpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0;
        f.record(`CPU s per GiB, ${label} (server+agent)`, path.name, cpu / (r.bytesTotal / (1024 * MiB)));
      }
    },
  };
}

/** Every test, recording into `f`, with the durations of `o`. */
export function benchTests(f: Figures, o: BenchOptions): TestDef[] {
  return [
    throughputTest(f, o.throughputMs, "up1", "upload, 1 stream", "up", 1),
    throughputTest(f, o.throughputMs, "down1", "download, 1 stream", "down", 1),
    throughputTest(f, o.throughputMs, "up8", `upload, ${PARALLEL} streams`, "up", PARALLEL),
    throughputTest(f, o.throughputMs, "down8", `download, ${PARALLEL} streams`, "down", PARALLEL),
    {
      id: "rr-paced",
      async run(path) {
        const r = await echoLatency(path.ports.echo, PACED_RATE, o.rrMs);
        f.record(`echo 1 KiB at ${PACED_RATE}/s: p50 (µs)`, path.name, r.p50);
        f.record(`echo 1 KiB at ${PACED_RATE}/s: p99 (µs)`, path.name, r.p99);
        f.record(`echo 1 KiB at ${PACED_RATE}/s: p99.9 (µs)`, path.name, r.p999);
      },
    },
    {
      id: "rr-closed",
      async run(path) {
        const r = await echoLatency(path.ports.echo, 0, o.rrMs);
        f.record("echo 1 KiB closed loop: p50 (µs)", path.name, r.p50);
        f.record("echo 1 KiB closed loop: p99 (µs)", path.name, r.p99);
        f.record("echo 1 KiB closed loop: req/s", path.name, r.reqPerSec);
      },
    },
    {
      id: "conn",
      async run(path) {
        const r = await connRate(path.ports.echo, CONN_WORKERS, o.connMs);
        f.record(`new connections/s (${CONN_WORKERS} workers)`, path.name, r.perSec);
        if (r.failed > 0) f.errors.push(`${path.name}: ${r.failed} of ${r.completed + r.failed} new connections failed`);
      },
    },
  ];
}
