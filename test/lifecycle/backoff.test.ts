/** Reconnect backoff: capped exponential with full jitter, from a seeded random source. */
import { expect, test } from "bun:test";
import { Backoff } from "../../src/agent/backoff.ts";
import { Prng } from "../support/protocol-prng.ts";

test("1,000 schedules: first retries spread evenly (no 100 ms bucket over 5%), every delay within [0, cap]", () => {
  // A base of 5 s spreads a herd of agents that lost the same server over 50 buckets of 100 ms.
  const base = 5_000;
  const cap = 30_000;
  const rng = new Prng(20261127);
  const buckets = new Map<number, number>();
  for (let i = 0; i < 1_000; i++) {
    const b = new Backoff(base, cap, () => rng.next());
    const first = b.next();
    buckets.set(Math.floor(first / 100), (buckets.get(Math.floor(first / 100)) ?? 0) + 1);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThanOrEqual(base);
    for (let k = 0; k < 20; k++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(cap);
    }
  }
  expect(Math.max(...buckets.values())).toBeLessThanOrEqual(50);
  expect(buckets.size).toBeGreaterThanOrEqual(45);
});

test("the ceiling doubles per attempt up to the cap; reset goes back to the base; auth failures wait near the cap", () => {
  const b = new Backoff(100, 1_000, () => 0.999999);
  expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([99, 199, 399, 799, 999, 999]);
  b.reset();
  expect(b.next()).toBe(99);
  const auth = new Backoff(100, 1_000, () => 0);
  expect(auth.max()).toBe(500);
});
