/** scripts/check-size.ts finds long files and long functions by layout, and the real tree passes it. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { longFunctions, sizeProblems } from "../../scripts/check-size.ts";
import { unreachedCodes } from "../../scripts/check-error-codes.ts";
import { ErrorCodes } from "../../src/errors.ts";

const body = (n: number): string => Array.from({ length: n }, (_, i) => `    x += ${i};`).join("\n");

describe("longFunctions", () => {
  test("functions, methods, arrows and multi-line signatures over the limit; blocks that are not functions ignored", () => {
    const text = [
      "export function a(): void {", body(10), "}",
      "class C {", "  m(x: number): number {", body(10), "    return x;", "  }",
      "  constructor(", "    readonly y: number,", "  ) {", body(10), "  }", "}",
      "const f = () => {", body(10), "};",
      "if (ok) {", body(20), "}",
      "function short() {", "  return 1;", "}",
    ].join("\n");
    const found = longFunctions(text, 8).map((f) => f.head);
    expect(found).toEqual(["export function a(): void {", "m(x: number): number {", ") {", "const f = () => {"]);
    expect(longFunctions(text, 100)).toEqual([]);
  });

  test("a tree with a long file and a long function is reported; the repository itself is clean", () => {
    const root = mkdtempSync(join(tmpdir(), "check-size-"));
    try {
      mkdirSync(join(root, "src"));
      writeFileSync(join(root, "src", "long.ts"), `${"// x\n".repeat(301)}`);
      writeFileSync(join(root, "src", "fn.ts"), `export function f(): void {\n${body(85)}\n}\n`);
      const problems = sizeProblems(root);
      expect(problems).toHaveLength(2);
      expect(problems.some((p) => p.startsWith("src/long.ts: 301 lines"))).toBe(true);
      expect(problems.some((p) => p.startsWith("src/fn.ts:1: function of 87 lines"))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    expect(sizeProblems(join(import.meta.dir, "..", "..")).filter((p) => p.startsWith("src/"))).toEqual([]);
  });
});

describe("unreachedCodes", () => {
  test("names every code a trace lacks, none when all were raised", () => {
    const all = Object.keys(ErrorCodes);
    expect(unreachedCodes("")).toEqual(all);
    expect(unreachedCodes(all.slice(1).join("\n") + "\n" + all.slice(1).join("\n"))).toEqual([all[0] as string]);
    expect(unreachedCodes(all.join("\n"))).toEqual([]);
  });
});
