/**
 * Prints the README's configuration table (markdown) from VARIABLES: `bun scripts/gen-config-table.ts`.
 * `--write` replaces the table between the README markers in place. test/config.test.ts fails when they differ.
 */
import { VARIABLES } from "../src/config.ts";

/** The README markers around the generated table. */
export const TABLE_START = "<!-- config-table:start -->";
export const TABLE_END = "<!-- config-table:end -->";

const cell = (s: string) => s.replaceAll("|", "\\|");

/** The markdown table: one row per variable, in VARIABLES order. */
export function configTable(): string {
  const rows = VARIABLES.map((d) => {
    const modes = d.modes.length > 1 ? "both" : d.modes.join(", ");
    const meaning = d.secret ? `${d.meaning} **Secret**: never printed.` : d.meaning;
    return `| \`${d.name}\` | ${modes} | \`${cell(d.syntax)}\` | ${cell(d.default)} | ${cell(meaning)} |`;
  });
  return ["| Variable | Mode | Value | Default | Meaning |", "|---|---|---|---|---|", ...rows].join("\n");
}

/** `readme` with the text between the markers replaced by the current table; throws if a marker is missing. */
export function withTable(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`README markers ${TABLE_START} / ${TABLE_END} not found`);
  return `${readme.slice(0, start + TABLE_START.length)}\n${configTable()}\n${readme.slice(end)}`;
}

if (import.meta.main) {
  if (Bun.argv.includes("--write")) {
    const path = new URL("../README.md", import.meta.url).pathname;
    await Bun.write(path, withTable(await Bun.file(path).text()));
    console.log(`updated ${path}`);
  } else {
    console.log(configTable());
  }
}
