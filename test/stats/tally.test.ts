/** stats/tally.ts: tallies in Maps and WeakMaps, reset-code labels bounded to the known codes, map-key splitting. */
import { expect, test } from "bun:test";
import { addTally, resetCodeLabel, splitKey, type StreamTally } from "../../src/stats/tally.ts";
import { WireCode, wireCodeName } from "../../src/protocol/constants.ts";

test("addTally creates the tally on first use, then adds streams and bytes", () => {
  const map = new Map<string, StreamTally>();
  addTally(map, "web", 10, 20);
  addTally(map, "web", 1, 2);
  addTally(map, "ssh", 0, 0);
  expect([...map]).toEqual([
    ["web", { streams: 2, upBytes: 11, downBytes: 22 }],
    ["ssh", { streams: 1, upBytes: 0, downBytes: 0 }],
  ]);
});

test("addTally works on a WeakMap keyed by objects", () => {
  const map = new WeakMap<object, StreamTally>();
  const key = {};
  addTally(map, key, 5, 7);
  addTally(map, key, 5, 7);
  expect(map.get(key)).toEqual({ streams: 2, upBytes: 10, downBytes: 14 });
});

test("resetCodeLabel names the known wire codes and folds every other code into UNKNOWN", () => {
  for (const [name, code] of Object.entries(WireCode)) expect(resetCodeLabel(code)).toBe(name);
  for (const code of [18, 99, 1000, 2 ** 32 - 1, -1, 1.5]) {
    expect(wireCodeName(code)).toBe(`UNKNOWN(${code})`);
    expect(resetCodeLabel(code)).toBe("UNKNOWN");
  }
});

test("splitKey splits on NUL and keeps empty parts", () => {
  expect(splitKey("edge/web\u0000agent-1")).toEqual(["edge/web", "agent-1"]);
  expect(splitKey("a\u0000\u0000c")).toEqual(["a", "", "c"]);
  expect(splitKey("solo")).toEqual(["solo"]);
});
