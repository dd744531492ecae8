/**
 * A tiny Prometheus metrics registry: families whose samples are collected at scrape time from counters the roles
 * already keep (plain numbers and maps), and fixed-bucket histograms. Renders the text exposition format 0.0.4.
 * It imports only protocol constants, so the roles' stats objects import {@link Histogram}, {@link StreamTally} and
 * {@link resetCodeLabel} from here (as they import log.ts); nothing here imports a role.
 */
import { wireCodeName } from "../protocol/constants.ts";

/** Label name → value of one sample. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a counter or gauge family. */
export type Sample = readonly [labels: Labels, value: number];

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

/** Streams and bytes of a set of streams. `up`: visitor → target; `down`: target → visitor. */
export interface StreamTally {
  streams: number;
  upBytes: number;
  downBytes: number;
}

/** Adds one stream's bytes to the tally under `key` (creating it), in a Map or a WeakMap. */
export function addTally<K>(
  map: { get(key: K): StreamTally | undefined; set(key: K, value: StreamTally): unknown },
  key: K,
  upBytes: number,
  downBytes: number,
): void {
  const t = map.get(key);
  if (t === undefined) map.set(key, { streams: 1, upBytes, downBytes });
  else {
    t.streams++;
    t.upBytes += upBytes;
    t.downBytes += downBytes;
  }
}

/** The histogram under `key`, created on first use. */
export function histogramOf(map: Map<string, Histogram>, key: string): Histogram {
  let h = map.get(key);
  if (h === undefined) {
    h = new Histogram();
    map.set(key, h);
  }
  return h;
}

type Family =
  | { name: string; help: string; type: "counter" | "gauge"; collect: () => Iterable<Sample> }
  | { name: string; help: string; type: "histogram"; collect: () => Iterable<readonly [Labels, Histogram]> };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Families in registration order; `render` calls every collector once. */
export class MetricsRegistry {
  private readonly families: Family[] = [];

  /** A counter family: `name` ends in `_total`; values never decrease. */
  counter(name: string, help: string, collect: () => Iterable<Sample>): this {
    if (!name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
    return this.add({ name, help, type: "counter", collect });
  }

  /** A gauge family, computed when scraped. */
  gauge(name: string, help: string, collect: () => Iterable<Sample>): this {
    return this.add({ name, help, type: "gauge", collect });
  }

  /** A histogram family: one {@link Histogram} per label set. */
  histogram(name: string, help: string, collect: () => Iterable<readonly [Labels, Histogram]>): this {
    return this.add({ name, help, type: "histogram", collect });
  }

  private add(f: Family): this {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${f.name}`);
    if (this.families.some((g) => g.name === f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.families.push(f);
    return this;
  }

  /** The exposition text: `# HELP`, `# TYPE` and the samples of every family, newline-terminated. */
  render(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      if (f.type === "histogram") {
        for (const [labels, h] of f.collect()) renderHistogram(out, f.name, labels, h);
      } else {
        for (const [labels, value] of f.collect()) out.push(`${f.name}${labelText(labels)} ${num(value)}`);
      }
    }
    return out.join("\n") + "\n";
  }
}

function renderHistogram(out: string[], name: string, labels: Labels, h: Histogram): void {
  let cumulative = 0;
  for (let i = 0; i <= h.bounds.length; i++) {
    cumulative += h.counts[i] as number;
    const le = i < h.bounds.length ? num(h.bounds[i] as number) : "+Inf";
    out.push(`${name}_bucket${labelText({ ...labels, le })} ${cumulative}`);
  }
  out.push(`${name}_sum${labelText(labels)} ${num(h.sum)}`, `${name}_count${labelText(labels)} ${h.count}`);
}

function labelText(labels: Labels): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k) || k.startsWith("__")) throw new Error(`invalid label name ${k}`);
    parts.push(`${k}="${escapeLabel(v)}"`);
  }
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** Label values escape backslash, double quote and line feed. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Wire code name for counters: codes outside SPEC.md §5.2 share "UNKNOWN", so a peer cannot grow the maps. */
export function resetCodeLabel(code: number): string {
  const name = wireCodeName(code);
  return name.startsWith("UNKNOWN(") ? "UNKNOWN" : name;
}

/** Splits a `a\0b\0c` map key into its parts (the stats objects key maps this way). */
export function splitKey(key: string): string[] {
  return key.split("\u0000");
}
