/**
 * Builds standalone executables: `bun scripts/build.ts [--target=<name>[,<name>…]|all]…`, default the host's.
 * Output: dist/backchannel-<os>-<arch>[-musl][.exe]. Cross targets make Bun download @oven/bun-<target> from the
 * npm registry once (cached in ~/.bun/install/cache; bun-platform.md §3). Exit 0 if every build succeeded, 1 if one
 * failed, 2 on a bad argument.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Every target we ship, as `<os>-<arch>[-musl]` (Bun's compile target minus the `bun-` prefix). */
export const TARGETS = [
  "linux-x64",
  "linux-arm64",
  "linux-x64-musl",
  "linux-arm64-musl",
  "darwin-x64",
  "darwin-arm64",
  "windows-x64",
] as const;
/** A target we ship. */
export type Target = (typeof TARGETS)[number];

const ROOT = join(import.meta.dir, "..");

/** The target of the machine running this script (musl when the host's dynamic loader is musl's). */
export function hostTarget(): string {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const musl = os === "linux" && ["x86_64", "aarch64"].some((a) => existsSync(`/lib/ld-musl-${a}.so.1`));
  return `${os}-${process.arch}${musl ? "-musl" : ""}`;
}

/** Output path (relative to the repo root) for `target`. */
export function outfileFor(target: string): string {
  return `dist/backchannel-${target}${target.startsWith("windows-") ? ".exe" : ""}`;
}

/**
 * Parses the script's arguments: `--target=a,b`, `--target a`, repeatable; `all` means every target. No target means
 * the host's. Returns the targets in order without duplicates, or the argument errors.
 */
export function parseTargets(argv: readonly string[], host: string): { targets: string[] } | { errors: string[] } {
  const wanted: string[] = [];
  const errors: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    let list: string | undefined;
    if (arg.startsWith("--target=")) list = arg.slice("--target=".length);
    else if (arg === "--target") list = argv[++i];
    if (list === undefined) {
      errors.push(`unknown argument ${JSON.stringify(arg)}`);
      continue;
    }
    for (const name of list.split(",").map((s) => s.trim().replace(/^bun-/, ""))) {
      if (name === "all") wanted.push(...TARGETS);
      else if (name === "host") wanted.push(host);
      else if ((TARGETS as readonly string[]).includes(name)) wanted.push(name);
      else errors.push(`unknown target ${JSON.stringify(name)} (known: ${TARGETS.join(", ")}, all, host)`);
    }
  }
  if (errors.length > 0) return { errors };
  return { targets: wanted.length > 0 ? [...new Set(wanted)] : [host] };
}

/** The `bun build` arguments for `target`; the host build omits --target so Bun uses its own runtime. */
export function buildArgs(target: string, host: string): string[] {
  return [
    "build",
    "--compile",
    "--minify",
    "--sourcemap",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    ...(target === host ? [] : [`--target=bun-${target}`]),
    "src/main.ts",
    "--outfile",
    outfileFor(target),
  ];
}

async function build(target: string, host: string): Promise<boolean> {
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, ...buildArgs(target, host)], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const file = outfileFor(target);
  if (code !== 0 || !existsSync(join(ROOT, file))) {
    console.error(`FAILED ${target} (exit ${code}, ${seconds}s)\n${(out + err).trim()}`);
    return false;
  }
  const mb = (statSync(join(ROOT, file)).size / 1e6).toFixed(1);
  console.log(`built ${file} (${mb} MB, ${seconds}s)`);
  return true;
}

async function run(argv: readonly string[]): Promise<number> {
  const host = hostTarget();
  const parsed = parseTargets(argv, host);
  if ("errors" in parsed) {
    console.error(`build: ${parsed.errors.join("; ")}\nusage: bun scripts/build.ts [--target=<name>[,<name>…]|all]`);
    return 2;
  }
  mkdirSync(join(ROOT, "dist"), { recursive: true });
  let failed = 0;
  // One at a time: each compile is CPU-heavy and cross targets download ~100 MB.
  for (const target of parsed.targets) if (!(await build(target, host))) failed++;
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) process.exitCode = await run(Bun.argv.slice(2));
