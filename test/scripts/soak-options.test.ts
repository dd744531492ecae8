/** The soak's command line (scripts/soak/options.ts): defaults, both flag forms, clamps, and the errors. */
import { expect, test } from "bun:test";
import { UsageError, limitsFor, parseOptions } from "../../scripts/soak/options.ts";

const NOW = new Date("2025-10-09T08:53:20.812Z");

test("defaults: one minute, a seed and a log directory from the clock", () => {
  const o = parseOptions([], NOW);
  expect(o).toMatchObject({ minutes: 1, seed: NOW.getTime() % 1_000_000, agents: 3, connections: 2, visitors: 12, restartAll: false, verbose: false });
  expect(o.logDir).toBe("/tmp/backchannel-soak-2025-10-09T08-53-20-812Z");
});

test("--name value and --name=value, clamped where the soak needs it", () => {
  const o = parseOptions(["--minutes", "20", "--seed=42.9", "--agents=0", "--checkpoint-every", "5", "--gc-level=7", "--restart-all", "--log-dir", "/tmp/x"], NOW);
  expect(o).toMatchObject({ minutes: 20, seed: 42, agents: 1, checkpointEveryS: 20, gcLevel: 2, restartAll: true, logDir: "/tmp/x" });
});

test("bad arguments and --help throw UsageError", () => {
  const message = (argv: string[]) => {
    try {
      parseOptions(argv, NOW);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error("no error");
  };
  expect(message(["--minutes"])).toBe("--minutes needs a number");
  expect(message(["--minutes", "-1"])).toBe("--minutes needs a number");
  expect(message(["--minutes=0"])).toBe("--minutes must be > 0");
  expect(message(["--log-dir"])).toBe("--log-dir needs a path");
  expect(message(["--frobnicate"])).toBe("unknown argument --frobnicate");
  expect(message(["--help"])).toBe("");
});

test("limits follow the heartbeat and drain settings", () => {
  const l = limitsFor(parseOptions(["--heartbeat-interval-ms", "500", "--heartbeat-timeout-ms", "2000", "--drain-grace-ms=5000"], NOW));
  expect(l).toEqual({ hangMs: 5500, hangKillMs: 22_000, cutMs: 1500, killMs: 2500, blackholeMs: 4000, agentMs: 7000 });
});
