/** Reads the checked parts of SPEC.md: the `hex` example blocks and the code tables. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex } from "./protocol-prng.ts";

/** SPEC.md's text. */
export const specText: string = readFileSync(join(import.meta.dir, "../../SPEC.md"), "utf8");

/** One fenced block tagged ```` ```hex <name> [ERR_CODE] ````. */
export interface SpecVector {
  name: string;
  /** Set when the block shows bytes a decoder must reject with this code. */
  rejectCode: string | null;
  bytes: Uint8Array<ArrayBuffer>;
}

/** All `hex` blocks of SPEC.md, in document order. */
export function specVectors(text = specText): SpecVector[] {
  const out: SpecVector[] = [];
  for (const m of text.matchAll(/^```hex ([a-z0-9-]+)(?: (ERR_[A-Z_]+))?\n([\s\S]*?)^```$/gm)) {
    out.push({ name: m[1]!, rejectCode: m[2] ?? null, bytes: fromHex(m[3]!) });
  }
  return out;
}

/** The rows of the `nth` (0-based) markdown table under heading `heading` (cells trimmed, backticks removed). */
export function specTable(heading: string, nth = 0, text = specText): string[][] {
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no heading ${heading}`);
  const tables: string[][][] = [];
  let current: string[][] | null = null;
  for (const line of text.slice(start + heading.length + 2).split("\n")) {
    if (line.startsWith("#")) break;
    if (line.startsWith("|")) {
      if (current === null) tables.push((current = []));
      current.push(line.slice(1, -1).split("|").map((c) => c.trim().replaceAll("`", "")));
    } else current = null;
  }
  const table = tables[nth];
  if (table === undefined) throw new Error(`no table ${nth} under ${heading}`);
  return table.slice(2); // header and separator
}
