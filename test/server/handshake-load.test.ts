/**
 * Admission by measured capacity (src/server/handshake-load.ts) on a fake clock and CPU: SERVER_BUSY retry times are
 * spread (no two within 1 ms in a seeded run of 1,000, and over the expected drain time); everything is admitted
 * (within the cap) while handshakes are answered in time, and only what the measured rate answers in half the
 * deadline once they are not or the event loop lags; the per-address cap holds once slots are scarce; and the agent
 * honours a retry time with bounded jitter without climbing its backoff.
 */
import { describe, expect, test } from "bun:test";
import { HandshakeLoad, MIN_RETRY_MS, SAMPLE_MS } from "../../src/server/handshake-load.ts";
import { Backoff, HINT_JITTER_MAX_MS } from "../../src/agent/backoff.ts";
import { Prng } from "../support/protocol-prng.ts";

/** A load with a fake clock and CPU the test moves. */
function fakeLoad(o: { maxPending?: number; maxPendingPerIp?: number; seed?: number } = {}) {
  const clock = { now: 1_000_000, cpu: 0 };
  const rng = new Prng(o.seed ?? 7);
  const load = new HandshakeLoad({
    maxPending: o.maxPending ?? 16_384,
    maxPendingPerIp: o.maxPendingPerIp ?? 1024,
    handshakeTimeoutMs: 5_000,
    now: () => clock.now,
    cpuMs: () => clock.cpu,
    random: () => rng.next(),
    autoSample: false,
  });
  return { load, clock };
}

/** `n` handshakes admitted and answered after `tookMs` within one sample interval, costing `cpuMs` of CPU in all. */
function measure(load: HandshakeLoad, clock: { now: number; cpu: number }, n: number, cpuMs: number, tookMs = 5): void {
  for (let i = 0; i < n; i++) expect(load.tryAdmit(`10.0.${i >> 8}.${i & 255}`)).toBe(true);
  for (let i = 0; i < n; i++) {
    load.answered(tookMs);
    load.settled(`10.0.${i >> 8}.${i & 255}`);
  }
  clock.now += SAMPLE_MS;
  clock.cpu += cpuMs;
  load.sample();
}

describe("SERVER_BUSY retry times", () => {
  test("a seeded run of 1,000 refusals: no two retry times within 1 ms, spread past the expected drain", () => {
    const { load, clock } = fakeLoad({ maxPending: 500 });
    for (let i = 0; i < 30; i++) measure(load, clock, 100, 100); // 1 ms of CPU per handshake
    expect(load.cpuPerHandshakeMs).toBeCloseTo(1, 1);
    for (let i = 0; i < 500; i++) expect(load.tryAdmit(`192.0.2.${i % 250}`)).toBe(true);
    expect(load.tryAdmit("192.0.2.1")).toBe(false); // at the cap
    const rng = new Prng(99);
    const at: number[] = [];
    const hints: number[] = [];
    for (let i = 0; i < 1_000; i++) {
      clock.now += rng.int(3); // refusals arrive over time, several in the same millisecond
      const hint = load.retryAfterMs();
      expect(Number.isInteger(hint)).toBe(true);
      expect(hint).toBeGreaterThanOrEqual(MIN_RETRY_MS);
      hints.push(hint);
      at.push(clock.now + hint);
    }
    const sorted = [...at].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i] as number - (sorted[i - 1] as number)).toBeGreaterThanOrEqual(1);
    // 500 pending at ~1 ms each drain in ~500 ms: the first comes back after that, and the 1,000 are spread over
    // about 1,000 handshake-times (jittered 0.5..1.5 ms each), not in one wave.
    expect((hints[0] as number)).toBeGreaterThanOrEqual(MIN_RETRY_MS + 450);
    const span = (sorted[sorted.length - 1] as number) - (sorted[0] as number);
    expect(span).toBeGreaterThan(700);
    expect(span).toBeLessThan(1_600);
    expect(new Set(hints.slice(1).map((h, i) => h - (hints[i] as number))).size).toBeGreaterThan(2); // jittered gaps
  });

  test("an idle server gives a short retry time", () => {
    const { load } = fakeLoad();
    const hint = load.retryAfterMs();
    expect(hint).toBeGreaterThanOrEqual(MIN_RETRY_MS);
    expect(hint).toBeLessThan(MIN_RETRY_MS + 10);
  });
});

describe("the limit follows measured capacity within the caps", () => {
  test("answered in time: the cap; answered late: what the measured rate answers in half the deadline", () => {
    const { load, clock } = fakeLoad();
    measure(load, clock, 50, 25);
    expect(load.overloaded).toBe(false);
    expect(load.limit()).toBe(16_384);
    measure(load, clock, 50, 25, 3_000); // even the quickest took 3 s, over half the 5 s deadline
    expect(load.overloaded).toBe(true);
    expect(load.ratePerMs).toBeCloseTo(0.5, 5); // 50 per 100 ms
    expect(load.limit()).toBe(1_250); // 2,500 ms at 2 ms each
    expect(load.retryAfterMs()).toBeGreaterThanOrEqual(MIN_RETRY_MS);
    measure(load, clock, 50, 25, 10);
    expect(load.overloaded).toBe(false);
    expect(load.limit()).toBe(16_384);
  });

  test("peers that never finish (a slowloris timing out) do not count as slow answers", () => {
    const { load, clock } = fakeLoad();
    for (let i = 0; i < 100; i++) expect(load.tryAdmit("198.51.100.7")).toBe(true);
    for (let i = 0; i < 100; i++) load.settled("198.51.100.7"); // timed out: never answered
    clock.now += SAMPLE_MS;
    load.sample();
    expect(load.overloaded).toBe(false);
  });

  test("an event loop lagging by a quarter of the deadline counts as overloaded until it recovers", () => {
    const { load, clock } = fakeLoad();
    clock.now += SAMPLE_MS + 1_300;
    load.sample();
    expect(load.overloaded).toBe(true);
    expect(load.limit()).toBe(5_000); // 2,500 ms at the initial 0.5 ms (no rate measured yet)
    clock.now += SAMPLE_MS;
    load.sample(); // the lag halves (650 ms) and nothing is pending
    expect(load.overloaded).toBe(false);
  });

  test("one address may pass its cap while slots are plentiful, not from half the cap on; slots come back", () => {
    const { load } = fakeLoad({ maxPending: 8, maxPendingPerIp: 3 });
    for (let i = 0; i < 4; i++) expect(load.tryAdmit("203.0.113.9")).toBe(true); // pending < 4: not scarce
    expect(load.tryAdmit("203.0.113.9")).toBe(false); // half the cap taken: held to 3
    expect(load.tryAdmit("203.0.113.10")).toBe(true);
    load.settled("203.0.113.9");
    load.settled("203.0.113.9");
    expect(load.pending).toBe(3);
    expect(load.tryAdmit("203.0.113.9")).toBe(true); // 3 pending: plentiful again
    expect(load.tryAdmit("203.0.113.9")).toBe(false); // 4 pending, 3 of its own
    expect(load.pending).toBe(4);
  });
});

describe("the agent honours a retry time", () => {
  test("hint plus at most a tenth (≤ 1 s) of jitter, and the backoff does not climb", () => {
    const rng = new Prng(3);
    const b = new Backoff(1000, 30_000, () => rng.next());
    const got = Array.from({ length: 200 }, () => b.hinted(700));
    expect(Math.min(...got)).toBeGreaterThanOrEqual(700);
    expect(Math.max(...got)).toBeLessThanOrEqual(770);
    expect(new Set(got).size).toBeGreaterThan(20);
    expect(b.attempts).toBe(0);
    const long = Array.from({ length: 200 }, () => b.hinted(60_000));
    expect(Math.max(...long)).toBeLessThanOrEqual(60_000 + HINT_JITTER_MAX_MS);
  });
});
