/** The benchmark's `--wan` options (scripts/bench/options.ts): the set's forms, the defaults, the errors. */
import { expect, test } from "bun:test";
import { DEFAULT_WAN, parseBenchOptions, parseWanPoints } from "../../scripts/bench/options.ts";

test("a WAN set: RTT/MBIT points separated by commas, or the issue's RTT,MBIT (several separated by ;)", () => {
  expect(parseWanPoints("100/300")).toEqual([{ rttMs: 100, mbit: 300 }]);
  expect(parseWanPoints("20/1000,200/100")).toEqual([
    { rttMs: 20, mbit: 1000 },
    { rttMs: 200, mbit: 100 },
  ]);
  expect(parseWanPoints("100,300")).toEqual([{ rttMs: 100, mbit: 300 }]);
  expect(parseWanPoints("20,1000;50,500")).toEqual([
    { rttMs: 20, mbit: 1000 },
    { rttMs: 50, mbit: 500 },
  ]);
  expect(parseWanPoints("0/2.5")).toEqual([{ rttMs: 0, mbit: 2.5 }]);
});

test("a bad WAN set throws, naming the piece", () => {
  expect(() => parseWanPoints("100")).toThrow(/"100" is not RTT_MS\/MBIT/);
  expect(() => parseWanPoints("100/0")).toThrow(/"100\/0"/);
  expect(() => parseWanPoints("20,1000,50,500")).toThrow(/is not RTT_MS\/MBIT/);
  expect(() => parseWanPoints("")).toThrow(/no link given/);
});

test("--wan alone takes the default set and one round; without it there is no WAN mode", () => {
  const o = parseBenchOptions(["--wan"]);
  expect(o.wan?.points).toEqual([...DEFAULT_WAN]);
  expect(o.wan).toMatchObject({ rounds: 1, measureMs: 3000, warmMinMs: 1500, warmRtts: 8, queueMs: undefined });
  expect(parseBenchOptions(["--wan=50/500", "--quick", "--rounds=3", "--wan-seconds=5", "--wan-queue-ms=10"]).wan).toMatchObject({
    points: [{ rttMs: 50, mbit: 500 }],
    rounds: 3,
    measureMs: 5000,
    warmMinMs: 750,
    queueMs: 10,
  });
  expect(parseBenchOptions([]).wan).toBeNull();
  expect(parseBenchOptions(["--help"]).help).toBe(true);
});
