/**
 * A strict parser for the Prometheus text exposition format (0.0.4), for tests: it throws on anything a scraper
 * might reject or misread. Every sample belongs to a family declared by `# TYPE` before it; names, label names and
 * escapes are valid; no series twice; histogram buckets ascend in `le`, are cumulative, end at `+Inf`, and agree
 * with `_count`, which comes with a `_sum`.
 */

export type PromType = "counter" | "gauge" | "histogram" | "summary" | "untyped";
export interface PromSample { name: string; labels: Record<string, string>; value: number }
export interface PromFamily { name: string; type: PromType; help: string | null; samples: PromSample[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly string[] = ["counter", "gauge", "histogram", "summary", "untyped"];

function parseValue(s: string, where: string): number {
  if (s === "+Inf" || s === "Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parses `{a="x",b="y"}` starting at `text[i] === "{"`; returns the labels and the index after `}`. */
function parseLabels(text: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++;
  for (;;) {
    if (text[i] === "}") return [labels, i + 1];
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: label without =`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let j = eq + 2;
    let value = "";
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === "\\") {
        const n = text[j + 1];
        if (n === "\\") value += "\\";
        else if (n === '"') value += '"';
        else if (n === "n") value += "\n";
        else throw new Error(`${where}: bad escape \\${n}`);
        j += 2;
      } else {
        if (c === "\n") throw new Error(`${where}: raw line feed in a label value`);
        value += c;
        j++;
      }
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`${where}: expected , or } after a label`);
  }
}

/** The family a sample name belongs to, given the declared types. */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const direct = families.get(name);
  if (direct !== undefined && direct.type !== "histogram") return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f !== undefined && f.type === "histogram") return f;
  }
  return undefined;
}

/** Parses exposition text strictly (see the file header); families by name. */
export function parseProm(text: string): Map<string, PromFamily> {
  if (!text.endsWith("\n")) throw new Error("exposition does not end with a line feed");
  const families = new Map<string, PromFamily>();
  const seen = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === "") throw new Error(`${where}: empty line`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // a comment
      const [, kind, name = "", rest = ""] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      let f = families.get(name);
      if (kind === "TYPE") {
        if (!TYPES.includes(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if (f !== undefined && (f.samples.length > 0 || f.type !== "untyped")) throw new Error(`${where}: TYPE ${name} late or twice`);
        if (f === undefined) families.set(name, (f = { name, type: rest as PromType, help: null, samples: [] }));
        else f.type = rest as PromType;
        if (rest === "counter" && !name.endsWith("_total")) throw new Error(`${where}: counter ${name} lacks _total`);
      } else {
        if (f?.help != null) throw new Error(`${where}: HELP ${name} twice`);
        if (rest.replace(/\\[\\n]/g, "").includes("\\")) throw new Error(`${where}: bad escape in HELP`);
        if (f === undefined) families.set(name, (f = { name, type: "untyped", help: rest, samples: [] }));
        else f.help = rest;
      }
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`${where}: no sample name`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad sample name ${name}`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === "{") [labels, i] = parseLabels(line, i, where);
    if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(" ");
    if (parts.length > 2) throw new Error(`${where}: trailing text`);
    const value = parseValue(parts[0] ?? "", where);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1] ?? "")) throw new Error(`${where}: bad timestamp`);
    const f = familyOf(name, families);
    if (f === undefined || f.type === "untyped") throw new Error(`${where}: sample ${name} has no # TYPE before it`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seen.add(key);
    if (f.type === "histogram" && name.endsWith("_bucket") && labels.le === undefined) throw new Error(`${where}: bucket without le`);
    if (f.type === "counter" && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) g.buckets.push([parseValue(le ?? "", f.name), s.value]);
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
  }
  for (const [key, g] of groups) {
    const where = `${f.name}${key}`;
    if (g.buckets.length === 0 || g.sum === undefined || g.count === undefined) throw new Error(`${where}: buckets, _sum and _count all needed`);
    for (let i = 1; i < g.buckets.length; i++) {
      const [le0, c0] = g.buckets[i - 1] as [number, number];
      const [le1, c1] = g.buckets[i] as [number, number];
      if (!(le1 > le0)) throw new Error(`${where}: le not ascending`);
      if (c1 < c0) throw new Error(`${where}: buckets not cumulative`);
    }
    const [lastLe, lastCount] = g.buckets[g.buckets.length - 1] as [number, number];
    if (lastLe !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (lastCount !== g.count) throw new Error(`${where}: +Inf bucket ${lastCount} != _count ${g.count}`);
  }
}

/** The value of the one sample named `name` whose labels are exactly `labels`; undefined if none. */
export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const f = familyOf(name, families);
  const want = JSON.stringify(Object.entries(labels).sort());
  return f?.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}
