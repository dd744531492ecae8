/**
 * Admission by measured capacity (src/server/handshake-load.ts) on a fake clock and CPU: SERVER_BUSY retry times are
 * spread (no two within 1 ms in a seeded run of 1,000, and over the expected drain time), the limit follows the
 * measured CPU time per handshake within the caps, a lagging event loop admits only the minimum, the per-address
 * cap holds; and the agent honours a retry time with bounded jitter without climbing its backoff.
 */
import { describe, expect, test } from "bun:test";
import { HandshakeLoad, LAG_LIMIT_MS, MIN_PENDING, MIN_RETRY_MS, SAMPLE_MS } from "../../src/server/handshake-load.ts";
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

/** `n` handshakes admitted and settled within one sample interval that cost `cpuMs` of CPU in all. */
function measure(load: HandshakeLoad, clock: { now: number; cpu: number }, n: number, cpuMs: number): void {
  for (let i = 0; i < n; i++) expect(load.tryAdmit(`10.0.${i >> 8}.${i & 255}`)).toBe(true);
  for (let i = 0; i < n; i++) load.settled(`10.0.${i >> 8}.${i & 255}`);
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
  test("CPU per handshake sets how many may be pending: half the deadline's worth", () => {
    const { load, clock } = fakeLoad();
    for (let i = 0; i < 30; i++) measure(load, clock, 50, 250); // 5 ms each
    expect(load.cpuPerHandshakeMs).toBeCloseTo(5, 0);
    expect(load.limit()).toBeGreaterThan(450); // 2,500 ms / 5 ms = 500
    expect(load.limit()).toBeLessThan(550);
    for (let i = 0; i < 30; i++) measure(load, clock, 50, 5); // 0.1 ms each: the cap bounds it
    expect(load.limit()).toBe(16_384);
  });

  test("a lagging event loop admits only the minimum until it recovers", () => {
    const { load, clock } = fakeLoad();
    clock.now += SAMPLE_MS + LAG_LIMIT_MS + 50; // the sampling timer fired 150 ms late
    load.sample();
    expect(load.lagMs).toBeGreaterThan(LAG_LIMIT_MS);
    expect(load.limit()).toBe(MIN_PENDING);
    for (let i = 0; i < MIN_PENDING; i++) expect(load.tryAdmit(`198.51.100.${i}`)).toBe(true);
    expect(load.tryAdmit("198.51.100.200")).toBe(false);
    clock.now += SAMPLE_MS;
    load.sample();
    expect(load.limit()).toBeGreaterThan(MIN_PENDING); // lag halves per quiet interval: 75 ms now
  });

  test("the per-address cap holds whatever the capacity; a slot comes back when a handshake settles", () => {
    const { load } = fakeLoad({ maxPendingPerIp: 3 });
    for (let i = 0; i < 3; i++) expect(load.tryAdmit("203.0.113.9")).toBe(true);
    expect(load.tryAdmit("203.0.113.9")).toBe(false);
    expect(load.tryAdmit("203.0.113.10")).toBe(true);
    load.settled("203.0.113.9");
    expect(load.tryAdmit("203.0.113.9")).toBe(true);
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
