/** scripts/build.ts: target names, output names, compile flags. (The compiled binary itself is smoke-tested by .ci/run.) */
import { describe, expect, test } from "bun:test";
import { TARGETS, buildArgs, hostTarget, outfileFor, parseTargets } from "../scripts/build.ts";
import pkg from "../package.json" with { type: "json" };

describe("parseTargets", () => {
  const host = "linux-x64";
  test.each([
    [[], [host]],
    [["--target=linux-arm64"], ["linux-arm64"]],
    [["--target=linux-arm64,linux-x64-musl"], ["linux-arm64", "linux-x64-musl"]],
    [["--target", "darwin-arm64", "--target=windows-x64"], ["darwin-arm64", "windows-x64"]],
    [["--target=bun-linux-arm64-musl"], ["linux-arm64-musl"]],
    [["--target=host,linux-x64"], [host]],
    [["--target=all"], [...TARGETS]],
  ] as const)("%p → %p", (argv, want) => {
    expect(parseTargets(argv, host)).toEqual({ targets: [...want] });
  });

  test("unknown targets and arguments are errors", () => {
    expect(parseTargets(["--target=linux-x86"], host)).toEqual({ errors: [expect.stringContaining('"linux-x86"')] });
    expect(parseTargets(["--fast"], host)).toEqual({ errors: ['unknown argument "--fast"'] });
  });
});

test("output names are dist/backchannel-<os>-<arch>[-musl][.exe]", () => {
  expect(TARGETS.map(outfileFor)).toEqual([
    "dist/backchannel-linux-x64",
    "dist/backchannel-linux-arm64",
    "dist/backchannel-linux-x64-musl",
    "dist/backchannel-linux-arm64-musl",
    "dist/backchannel-darwin-x64",
    "dist/backchannel-darwin-arm64",
    "dist/backchannel-windows-x64.exe",
  ]);
});

test("compile flags: minified, sourcemap, no .env/bunfig autoload; --target only when cross-compiling", () => {
  const cross = buildArgs("linux-arm64", "linux-x64");
  for (const flag of ["--compile", "--minify", "--sourcemap", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig"]) {
    expect(cross).toContain(flag);
  }
  expect(cross).toContain("--target=bun-linux-arm64");
  expect(cross.slice(-3)).toEqual(["src/main.ts", "--outfile", "dist/backchannel-linux-arm64"]);
  expect(buildArgs("linux-x64", "linux-x64").some((a) => a.startsWith("--target"))).toBe(false);
});

test("the host target is one we ship, and npm run build runs this script", () => {
  expect(TARGETS as readonly string[]).toContain(hostTarget());
  expect(pkg.scripts.build).toBe("bun scripts/build.ts");
});
