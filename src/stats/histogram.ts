/**
 * Fixed-bucket histograms for the roles' latency statistics (server/stats.ts, agent/stats.ts). Kept below the roles
 * so they never import admin/; admin/metrics.ts renders them for /metrics.
 */

/** Upper bounds (seconds) for latency histograms: 0.5 ms .. 10 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A histogram with fixed upper bounds. `observe` is a short loop and three additions; no allocation. */
export class Histogram {
  /** Observations per bucket (not cumulative); the last slot counts values above every bound (+Inf). */
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** `bounds` must be finite and strictly increasing. */
  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS_S) {
    for (let i = 0; i < bounds.length; i++) {
      const b = bounds[i] as number;
      if (!Number.isFinite(b) || (i > 0 && b <= (bounds[i - 1] as number))) {
        throw new Error("histogram bounds must be finite and strictly increasing");
      }
    }
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Records one value (a value equal to a bound falls in that bound's bucket, as `le` means). */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/** The histogram under `key` (with {@link LATENCY_BUCKETS_S}), created on first use. */
export function histogramOf(map: Map<string, Histogram>, key: string): Histogram {
  let h = map.get(key);
  if (h === undefined) {
    h = new Histogram();
    map.set(key, h);
  }
  return h;
}
