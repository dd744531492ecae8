/**
 * scripts/check-imports.ts, run as CI runs it on small fixture trees written to a temporary directory (never on the
 * real src/, whose state this test must not depend on): a clean tree, circles, layer violations, a bad specifier.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { importSpecifiers } from "../../scripts/check-imports.ts";

const SCRIPT = join(import.meta.dir, "..", "..", "scripts", "check-imports.ts");
const temp = mkdtempSync(join(tmpdir(), "check-imports-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Writes `files` (path under src/ → text) to a fresh fixture and returns its src/ directory. */
function fixture(name: string, files: Record<string, string>): string {
  const root = join(temp, name, "src");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** Runs the checker on `root`; its exit code and output. */
function check(root: string): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync([process.execPath, SCRIPT, root], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** The problem lines of a failed run (without the header line), sorted. */
function problems(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("  ")).map((l) => l.trim()).sort();
}

/** A clean tree that uses every layer, each import form, and imports outside the root (ignored). */
const CLEAN: Record<string, string> = {
  "errors.ts": "export class TunnelError extends Error {}\n",
  "protocol/constants.ts": 'import { TunnelError } from "../errors.ts";\nexport const A = 1;\n',
  "protocol/frames.ts": "export interface Frame { a: number }\n",
  "protocol/decoder.ts":
    'import type { Frame } from "./frames.ts";\nexport type { Frame } from "./frames.ts";\nimport {\n  A,\n} from "./constants.ts";\n',
  "config-types.ts": 'export type Mode = "server" | "agent";\n',
  "config.ts": 'import * as v from "valibot";\nexport type { Mode } from "./config-types.ts";\nimport { A } from "./protocol/constants.ts";\n',
  "log.ts": 'import type { Mode } from "./config.ts";\n',
  "auth/credential.ts": 'import { createHash } from "node:crypto";\nimport "../errors.ts";\n',
  "transport/tcp.ts": 'import type { Mode } from "../config.ts";\n',
  "mux/stream.ts": 'import type { Frame } from "../protocol/decoder.ts";\nimport { x } from "../transport/tcp.ts";\n',
  "stats/tally.ts": 'import { A } from "../protocol/constants.ts";\n',
  "server/routes.ts": 'import type { Stream } from "../mux/stream.ts";\nimport { addTally } from "../stats/tally.ts";\n',
  "agent/services.ts": 'import { type Stream } from "../mux/stream.ts";\nconst t = await import("../stats/tally.ts");\n',
  "admin/view.ts": 'import type { S } from "../server/routes.ts";\nimport type { G } from "../agent/services.ts";\n',
  "main.ts": 'import pkg from "../package.json" with { type: "json" };\nimport { v } from "./admin/view.ts";\n',
};

describe("check-imports", () => {
  test("a clean tree: exit 0 and a one-line summary counting files and imports", () => {
    const r = check(fixture("clean", CLEAN));
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("check-imports: 15 files, 18 imports in src/: no circle, no import against the layers\n");
    expect(r.code).toBe(0);
  });

  test("circles, through type-only imports and re-exports, each reported once as a path back to its start", () => {
    const r = check(
      fixture("circles", {
        ...CLEAN,
        // frames.ts re-exports the decoder that imports a type from it (the shape of the old protocol circle).
        "protocol/frames.ts": 'export interface Frame { a: number }\nexport { Decoder } from "./decoder.ts";\n',
        // Three config files in a ring, closed by a type import.
        "config-a.ts": 'import { b } from "./config-b.ts";\n',
        "config-b.ts": 'import { c } from "./config-c.ts";\n',
        "config-c.ts": 'import type { A } from "./config-a.ts";\n',
        "mux/self.ts": 'import type { Self } from "./self.ts";\n',
      }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe("check-imports: 3 problems in src/");
    expect(problems(r.stderr)).toEqual([
      "circle: src/config-a.ts -> src/config-b.ts -> src/config-c.ts -> src/config-a.ts",
      "circle: src/mux/self.ts -> src/mux/self.ts",
      "circle: src/protocol/decoder.ts -> src/protocol/frames.ts -> src/protocol/decoder.ts",
    ]);
    expect(r.stdout).toBe("");
  });

  test("every elementary circle of a tangle is listed, none twice", () => {
    const r = check(
      fixture("tangle", {
        ...CLEAN,
        "mux/a.ts": 'import "./b.ts";\nimport "./c.ts";\n',
        "mux/b.ts": 'import "./a.ts";\nimport "./c.ts";\n',
        "mux/c.ts": 'import "./a.ts";\n',
      }),
    );
    expect(r.code).toBe(1);
    expect(problems(r.stderr)).toEqual([
      "circle: src/mux/a.ts -> src/mux/b.ts -> src/mux/a.ts",
      "circle: src/mux/a.ts -> src/mux/b.ts -> src/mux/c.ts -> src/mux/a.ts",
      "circle: src/mux/a.ts -> src/mux/c.ts -> src/mux/a.ts",
    ]);
  });

  test("imports against the layer order, between server and agent, of main, and files outside every layer", () => {
    const r = check(
      fixture("layers", {
        ...CLEAN,
        "protocol/bad.ts": 'import type { Stream } from "../mux/stream.ts";\n',
        "errors.ts": 'import type { Frame } from "./protocol/frames.ts";\n',
        "server/bad.ts": 'import { Services } from "../agent/services.ts";\n',
        "agent/bad.ts": 'export { view } from "../admin/view.ts";\n',
        "admin/bad.ts": 'const m = await import("../main.ts");\n',
        "stats/bad.ts": 'import type { Routes } from "../server/routes.ts";\n',
        "misc.ts": 'import { A } from "./protocol/constants.ts";\n',
      }),
    );
    expect(r.code).toBe(1);
    expect(problems(r.stderr)).toEqual([
      "layer: src/admin/bad.ts (admin) imports src/main.ts (main): a higher layer",
      "layer: src/agent/bad.ts (agent) imports src/admin/view.ts (admin): a higher layer",
      "layer: src/errors.ts (errors) imports src/protocol/frames.ts (protocol): a higher layer",
      "layer: src/misc.ts is in no layer (place it in LAYERS in scripts/check-imports.ts)",
      "layer: src/protocol/bad.ts (protocol) imports src/mux/stream.ts (mux): a higher layer",
      "layer: src/server/bad.ts (server) imports src/agent/services.ts (agent): layers of the same rank never import each other",
      "layer: src/stats/bad.ts (stats) imports src/server/routes.ts (server): a higher layer",
    ]);
  });

  test("a relative import naming no file is a problem; a missing root is an error", () => {
    const r = check(fixture("unresolved", { ...CLEAN, "mux/typo.ts": 'import { Stream } from "./strem.ts";\n' }));
    expect(r.code).toBe(1);
    expect(problems(r.stderr)).toEqual(['unresolved: src/mux/typo.ts imports "./strem.ts", which names no file']);
    const missing = check(join(temp, "nowhere"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("is not a directory");
  });
});

describe("importSpecifiers", () => {
  test("finds every import and export-from form, relative specifiers only, each once", () => {
    const source = [
      'import a from "./a.ts";',
      "import type { B } from './b.ts';",
      'import { c, type C } from "../c.ts";',
      'import * as d from "./d.ts";',
      'import "./e.ts";',
      'export { f } from "./f.ts";',
      'export type { G } from "./g.ts";',
      'export * from "./h.ts";',
      'export * as i from "./i.ts";',
      "import {\n  j,\n  type J,\n} from \"./j.ts\";",
      'type K = typeof import("./k.ts");',
      'const l = await import("./l.ts");',
      'import m from "./a.ts";',
      'import * as v from "valibot";',
      'import { x } from "node:fs";',
    ].join("\n");
    expect(importSpecifiers(source)).toEqual([
      "./a.ts", "./b.ts", "../c.ts", "./d.ts", "./e.ts", "./f.ts", "./g.ts", "./h.ts", "./i.ts", "./j.ts", "./k.ts",
      "./l.ts",
    ]);
  });

  test("ignores comments that quote imports, and declarations that are not imports", () => {
    const source = [
      "/**",
      ' * import { a } from "./doc.ts";',
      " */",
      'export const name = "./not-an-import.ts";',
      "export interface X { from: string }",
      'export function f(): string { return "./x.ts"; }',
    ].join("\n");
    expect(importSpecifiers(source)).toEqual([]);
  });
});
