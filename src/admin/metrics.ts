/**
 * A tiny Prometheus metrics registry: families whose samples are collected at scrape time from counters the roles
 * already keep (plain numbers and maps), and fixed-bucket histograms (stats/histogram.ts). Renders the text
 * exposition format 0.0.4. Nothing here imports a role.
 */
import type { Histogram } from "../stats/histogram.ts";

/** Label name → value of one sample. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a counter or gauge family. */
export type Sample = readonly [labels: Labels, value: number];

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
