/**
 * Import graph check for `src/` (issue 13): fails on any import circle and on any import against the layer order of
 * the README's code map. Every relative import counts, type-only imports and re-exports included (a circle of types
 * is still a circle for the reader). No dependency: the import statements are found with regular expressions.
 *
 *   npx bun scripts/check-imports.ts [root]     (root defaults to the repository's src/)
 *
 * Exit 0 with a one-line summary when clean; exit 1 listing every problem (each circle as `a -> b -> a`).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";

/**
 * One layer: the files it holds (paths relative to the root, `/`-separated) and its rank. A file may import its own
 * layer and any layer of lower rank; never a higher one, and never another layer of the same rank (server, agent).
 */
export interface Layer {
  readonly name: string;
  readonly rank: number;
  readonly files: RegExp;
}

/**
 * The layer order, lowest first (the README's code map states it too). `errors.ts` is below everything: protocol
 * imports nothing else of src/. Configuration, logging and credentials sit between protocol and transport: the
 * transport reads TLS settings from the config, and config may use protocol limits. `stats/` holds the histograms
 * and tallies both roles keep and admin renders, so the roles never import admin/.
 */
export const LAYERS: readonly Layer[] = [
  { name: "errors", rank: 0, files: /^errors\.ts$/ },
  { name: "protocol", rank: 1, files: /^protocol\// },
  { name: "config/log/auth", rank: 2, files: /^(config(-[a-z]+)*\.ts|log\.ts|auth\/.*)$/ },
  { name: "transport", rank: 3, files: /^transport\// },
  { name: "mux", rank: 4, files: /^mux\// },
  { name: "stats", rank: 5, files: /^stats\// },
  { name: "server", rank: 6, files: /^server\// },
  { name: "agent", rank: 6, files: /^agent\// },
  { name: "admin", rank: 7, files: /^admin\// },
  { name: "main", rank: 8, files: /^main\.ts$/ },
];

/** One relative import: the file it names, resolved against the importer (absolute path). */
interface Edge {
  readonly to: string;
  readonly specifier: string;
}

/** `import … from "x"`, `import "x"`, `export … from "x"` (type-only too), at the start of a line. */
const STATIC_IMPORT = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[\w*${},\s]*?\s*from\s*)?["']([^"'\n]+)["']/gm;
/** `import("x")` and `typeof import("x")`. */
const DYNAMIC_IMPORT = /\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g;

/** The relative specifiers a source text imports, in order of appearance, each once. */
export function importSpecifiers(source: string): string[] {
  const found = new Set<string>();
  for (const re of [STATIC_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of source.matchAll(re)) {
      const spec = m[1] as string;
      if (spec.startsWith("./") || spec.startsWith("../")) found.add(spec);
    }
  }
  return [...found];
}

/** Every `.ts` file under `dir` (absolute paths, sorted), skipping `.d.ts`. */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** The file a specifier names (`x.ts`, `x.js` written for `x.ts`, `x`, `x/index.ts`), or null if none exists. */
function resolveSpecifier(from: string, specifier: string): string | null {
  const base = resolve(dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, ".ts"), `${base}.ts`, join(base, "index.ts")];
  return candidates.find((c) => c.endsWith(".ts") && existsSync(c) && statSync(c).isFile()) ?? null;
}

/** The import graph of `root`: file → its imports of other files under `root`; plus problems found while reading. */
export async function importGraph(root: string): Promise<{ graph: Map<string, Edge[]>; problems: string[] }> {
  const graph = new Map<string, Edge[]>();
  const problems: string[] = [];
  for (const file of tsFiles(root)) {
    const edges: Edge[] = [];
    for (const specifier of importSpecifiers(await readFile(file, "utf8"))) {
      const inside = !relative(root, resolve(dirname(file), specifier)).startsWith("..");
      const to = resolveSpecifier(file, specifier);
      if (to !== null && !relative(root, to).startsWith("..")) edges.push({ to, specifier });
      else if (to === null && inside && !/\.(json|txt|html|css)$/.test(specifier)) {
        problems.push(`unresolved: ${show(root, file)} imports "${specifier}", which names no file`);
      }
    }
    graph.set(file, edges);
  }
  return { graph, problems };
}

/** A file as printed: relative to the root's parent, so the root's own name (`src/`) leads. */
function show(root: string, file: string): string {
  return relative(dirname(root), file).split(sep).join("/");
}

/** The layer of a file, or null when no layer holds it. */
export function layerOf(root: string, file: string): Layer | null {
  const rel = relative(root, file).split(sep).join("/");
  return LAYERS.find((l) => l.files.test(rel)) ?? null;
}

/** One problem line per file outside every layer and per import against the order. */
export function layerProblems(root: string, graph: Map<string, Edge[]>): string[] {
  const problems: string[] = [];
  for (const [file, edges] of graph) {
    const from = layerOf(root, file);
    if (from === null) {
      problems.push(`layer: ${show(root, file)} is in no layer (place it in LAYERS in scripts/check-imports.ts)`);
      continue;
    }
    for (const { to } of edges) {
      const target = layerOf(root, to);
      if (target === null || target === from || target.rank < from.rank) continue;
      const why = target.rank === from.rank ? "layers of the same rank never import each other" : "a higher layer";
      problems.push(`layer: ${show(root, file)} (${from.name}) imports ${show(root, to)} (${target.name}): ${why}`);
    }
  }
  return problems;
}

/** Strongly connected components with more than one file, or one file importing itself (Tarjan). */
function circularComponents(graph: Map<string, Edge[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v) as number, low.get(to) as number));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v) as number, index.get(to) as number));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).some((e) => e.to === v)) out.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** At most this many circles are listed per component (a dense component can hold exponentially many). */
const MAX_CIRCLES_PER_COMPONENT = 20;

/**
 * Every elementary circle of one component, each once: it starts at its first file in sorted order and visits only
 * later files, so rotations of the same circle are not repeated. Each circle is a path ending where it began.
 */
function circlesOf(component: string[], graph: Map<string, Edge[]>): string[][] {
  const order = new Map(component.map((f, i) => [f, i]));
  const circles: string[][] = [];
  for (const start of component) {
    const path = [start];
    const walk = (v: string): void => {
      for (const { to } of graph.get(v) ?? []) {
        if (circles.length >= MAX_CIRCLES_PER_COMPONENT) return;
        const i = order.get(to);
        if (to === start) circles.push([...path, start]);
        else if (i !== undefined && i > (order.get(start) as number) && !path.includes(to)) {
          path.push(to);
          walk(to);
          path.pop();
        }
      }
    };
    walk(start);
  }
  return circles;
}

/** One problem line per import circle. */
export function circleProblems(root: string, graph: Map<string, Edge[]>): string[] {
  const problems: string[] = [];
  for (const component of circularComponents(graph)) {
    const circles = circlesOf(component, graph);
    for (const c of circles) problems.push(`circle: ${c.map((f) => show(root, f)).join(" -> ")}`);
    if (circles.length >= MAX_CIRCLES_PER_COMPONENT) {
      problems.push(`circle: … and possibly more among ${component.map((f) => show(root, f)).join(", ")}`);
    }
  }
  return problems;
}

/** Checks `root`; returns the exit code after printing the problems (stderr) or the summary (stdout). */
export async function checkImports(root: string): Promise<number> {
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    console.error(`check-imports: ${root} is not a directory`);
    return 1;
  }
  const { graph, problems } = await importGraph(root);
  problems.push(...circleProblems(root, graph), ...layerProblems(root, graph));
  const name = `${show(root, root) || "."}/`;
  if (problems.length > 0) {
    console.error(`check-imports: ${problems.length} problem${problems.length === 1 ? "" : "s"} in ${name}`);
    for (const p of problems) console.error(`  ${p}`);
    return 1;
  }
  let edges = 0;
  for (const e of graph.values()) edges += e.length;
  const summary = `${graph.size} files, ${edges} imports in ${name}: no circle, no import against the layers`;
  console.log(`check-imports: ${summary}`);
  return 0;
}

if (import.meta.main) {
  const root = resolve(process.argv[2] ?? join(import.meta.dir, "..", "src"));
  process.exit(await checkImports(root));
}
