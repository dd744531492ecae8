/**
 * House-style size limits (issue 13): no file in src/ over 300 lines, none in scripts/ over 500, no function in src/
 * over 80 lines. Functions are found by layout, as the tree is formatted: a line that opens a function, method or
 * arrow body with `{` at its end, up to the first later line at the same indentation that starts with `}`.
 *
 *   bun scripts/check-size.ts [ROOT]    exit 0 with a summary line, or 1 listing every file or function over
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/** Limits, by what they apply to. */
export const LIMITS = { srcFileLines: 300, scriptFileLines: 500, srcFunctionLines: 80 } as const;

const OPENS_FUNCTION = [
  /^\s*(export\s+)?(default\s+)?(async\s+)?function\b.*\{$/,
  /=>\s*\{$/,
  // the end of a parameter list that spans lines: `) {` or `): Type {` (its lines above are not counted)
  /^\s*\)(\s*:\s*[^=]+)?\s*\{$/,
  // a method: optional modifiers, a name, a parameter list, an optional return type, then `{`
  /^\s*((public|private|protected|static|async|override|get|set|readonly)\s+)*[A-Za-z_$][\w$]*\s*(<[^>]*>)?\(.*\)\s*(:\s*[^=]+)?\{$/,
];
const NOT_A_FUNCTION = /^\s*(if|for|while|switch|catch|else|do|try|return|with)\b/;

/** A function longer than the limit: where it starts and how long it is. */
export interface LongFunction {
  line: number;
  lines: number;
  head: string;
}

/** The functions of `text` longer than `limit` lines (opening and closing line included). */
export function longFunctions(text: string, limit: number): LongFunction[] {
  const lines = text.split("\n");
  const out: LongFunction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (NOT_A_FUNCTION.test(l) || !OPENS_FUNCTION.some((re) => re.test(l))) continue;
    const indent = l.length - l.trimStart().length;
    for (let j = i + 1; j < lines.length; j++) {
      const m = lines[j] as string;
      if (m.trim() === "" || m.length - m.trimStart().length !== indent || !m.trimStart().startsWith("}")) continue;
      const n = j - i + 1;
      if (n > limit) out.push({ line: i + 1, lines: n, head: l.trim().slice(0, 80) });
      break;
    }
  }
  return out;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every problem under `root` (which holds src/ and scripts/), one line each. */
export function sizeProblems(root: string): string[] {
  const problems: string[] = [];
  for (const [dir, max, functions] of [["src", LIMITS.srcFileLines, true], ["scripts", LIMITS.scriptFileLines, false]] as const) {
    let files: string[];
    try {
      files = tsFiles(join(root, dir));
    } catch {
      continue;
    }
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      const name = relative(root, f);
      const n = text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length;
      if (n > max) problems.push(`${name}: ${n} lines (at most ${max})`);
      if (!functions) continue;
      for (const fn of longFunctions(text, LIMITS.srcFunctionLines)) {
        problems.push(`${name}:${fn.line}: function of ${fn.lines} lines (at most ${LIMITS.srcFunctionLines}): ${fn.head}`);
      }
    }
  }
  return problems;
}

if (import.meta.main) {
  const root = process.argv[2] ?? join(import.meta.dir, "..");
  const problems = sizeProblems(root);
  for (const p of problems) console.error(p);
  if (problems.length > 0) process.exit(1);
  console.log(`check-size: files in src/ ≤ ${LIMITS.srcFileLines} lines, scripts/ ≤ ${LIMITS.scriptFileLines}, functions in src/ ≤ ${LIMITS.srcFunctionLines}`);
}
