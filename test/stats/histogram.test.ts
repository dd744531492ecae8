/** stats/histogram.ts: bucket placement (le is inclusive, +Inf slot), bounds validation, and histogramOf. */
import { describe, expect, test } from "bun:test";
import { Histogram, LATENCY_BUCKETS_S, histogramOf } from "../../src/stats/histogram.ts";

describe("Histogram", () => {
  test("a value equal to a bound counts in that bucket; values above every bound in the last slot", () => {
    const h = new Histogram([0.1, 1]);
    for (const v of [0, 0.1, 0.10001, 1, 1.5, 1e9]) h.observe(v);
    expect(h.counts).toEqual([2, 2, 2]);
    expect(h.count).toBe(6);
    expect(h.sum).toBeCloseTo(0 + 0.1 + 0.10001 + 1 + 1.5 + 1e9, 6);
  });

  test("bounds must be finite and strictly increasing", () => {
    expect(() => new Histogram([1, 1])).toThrow(/strictly increasing/);
    expect(() => new Histogram([2, 1])).toThrow(/strictly increasing/);
    expect(() => new Histogram([1, Infinity])).toThrow(/finite/);
    expect(() => new Histogram([NaN])).toThrow(/finite/);
    expect(new Histogram([]).counts).toEqual([0]);
  });

  test("the default bounds are the latency buckets", () => {
    const h = new Histogram();
    expect(h.bounds).toBe(LATENCY_BUCKETS_S);
    expect(h.counts.length).toBe(LATENCY_BUCKETS_S.length + 1);
  });
});

test("histogramOf creates a histogram per key once and returns the same one after", () => {
  const map = new Map<string, Histogram>();
  const a = histogramOf(map, "a");
  a.observe(0.002);
  expect(histogramOf(map, "a")).toBe(a);
  expect(histogramOf(map, "b")).not.toBe(a);
  expect([...map.keys()]).toEqual(["a", "b"]);
  expect(a.count).toBe(1);
});
