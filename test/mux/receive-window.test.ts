/**
 * Adaptive receive windows (src/mux/receive-window.ts, SPEC.md §2.2) against a model path with an injected clock:
 * a bottleneck of `rate` bytes/ms behind a round trip of `rtt` ms, where a window of W bytes moves
 * min(rate, W / rtt) bytes per ms. Nothing is timed: the clock is the model's.
 */
import { describe, expect, test } from "bun:test";
import { InboundTally } from "../../src/mux/inbound-queue.ts";
import { CREDIT_BATCH_MAX_BYTES, ReceiveWindow, type WindowHost } from "../../src/mux/receive-window.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** A WindowHost whose clock, round trip and budget the test sets. */
function host(over: { rtt?: number; max?: number; budget?: number } = {}) {
  const inbound = new InboundTally(null, over.budget ?? Infinity, Infinity);
  const h = {
    inbound, rttMinMs: over.rtt ?? 100, windowMaxBytes: over.max ?? 16 * MiB, t: 0, now: () => h.t, mayReserve: (n: number) => inbound.fits(n),
  };
  return h satisfies WindowHost & { t: number };
}

/**
 * The peer sends whatever credit it has, the local socket takes it at once, in 64 KiB writes; the model's clock
 * advances by each write's share of the path's time. Returns the windows seen after each round of `size` bytes.
 */
function run(h: ReturnType<typeof host>, w: ReceiveWindow, path: { rate: number; rtt: number; extra?: number }, rounds: number): number[] {
  const seen: number[] = [];
  let peerCredit = w.credit;
  for (let r = 0; r < rounds; r++) {
    let left = w.size;
    while (left > 0) {
      const n = Math.min(64 * KiB, left, peerCredit);
      if (n === 0) throw new Error("the peer ran out of credit: the window stalled");
      expect(w.take(n)).toBe(true);
      peerCredit -= n;
      h.t += n / Math.min(path.rate, w.size / path.rtt) + ((path.extra ?? 0) * n) / w.size;
      const inc = w.written(n, 0);
      peerCredit += inc;
      expect(peerCredit).toBe(w.credit); // what the peer holds is exactly what we granted and it did not use
      left -= n;
    }
    seen.push(w.size);
  }
  return seen;
}

describe("adaptive receive window", () => {
  test("grows while the window limits the stream and settles just above the bandwidth-delay product", () => {
    const h = host({ rtt: 100 });
    const w = new ReceiveWindow(h, 2 * MiB);
    w.open(2 * MiB);
    const rate = 37.5 * 1000; // 300 Mbit/s in bytes per ms: BDP 3.75 MB at 100 ms
    const sizes = run(h, w, { rate, rtt: 100 }, 40);
    const bdp = rate * 100;
    const last = sizes.slice(-20);
    // Stable (no probing floods) within [BDP, BDP + 3 slacks of queue]: slack = 100/32 + 2 ms.
    for (const s of last) {
      expect(s).toBeGreaterThanOrEqual(bdp);
      expect(s).toBeLessThanOrEqual(bdp + rate * 3 * (100 / 32 + 2));
    }
    expect(w.reserved).toBe(w.size - 2 * MiB); // the growth is reserved, nothing more
    expect(h.inbound.bytes).toBe(w.reserved);
  });

  test("a window far below the path's BDP grows even when each round trip carries a few ms of its own", () => {
    // 7 ms per window on top of the round trip (credit batches at the path's rate, hand-offs): more than one slack
    // (100/32 + 2 ms) but far less than the queue a window above the BDP would build.
    const h = host({ rtt: 100 });
    const w = new ReceiveWindow(h, 2 * MiB);
    w.open(2 * MiB);
    const rate = 37.5 * 1000;
    const sizes = run(h, w, { rate, rtt: 100, extra: 7 }, 20);
    expect(sizes.at(-1)).toBeGreaterThanOrEqual(rate * 100);
  });

  test("one slow epoch (a pause of either end) cuts a settled window by at most an eighth, and it recovers", () => {
    const h = host({ rtt: 100 });
    const w = new ReceiveWindow(h, 2 * MiB);
    w.open(2 * MiB);
    const rate = 37.5 * 1000;
    const path = { rate, rtt: 100 };
    run(h, w, path, 40);
    const settled = w.size;
    h.t += 45; // the next epoch takes 45 ms longer than the path needs
    const after = run(h, w, path, 2);
    for (const s of after) expect(s).toBeGreaterThanOrEqual(Math.floor((settled * 7) / 8));
    const recovered = run(h, w, path, 12);
    expect(recovered.at(-1)).toBeGreaterThanOrEqual(rate * 100);
  });

  test("stops at TUNNEL_STREAM_WINDOW_MAX_BYTES and at the budget", () => {
    const fast = { rate: 1e9, rtt: 100 }; // the window always limits
    const capped = host({ max: 5 * MiB });
    const w1 = new ReceiveWindow(capped, 2 * MiB);
    w1.open(2 * MiB);
    expect(Math.max(...run(capped, w1, fast, 12))).toBe(5 * MiB);
    const budgeted = host({ budget: 3 * MiB });
    const w2 = new ReceiveWindow(budgeted, 2 * MiB);
    w2.open(2 * MiB);
    const sizes = run(budgeted, w2, fast, 12);
    expect(Math.max(...sizes)).toBe(4 * MiB); // 8 MiB would need 6 MiB of growth reserved
    expect(budgeted.inbound.bytes).toBeLessThanOrEqual(3 * MiB);
  });

  test("a slow local socket keeps the base window; without a round trip nothing changes", () => {
    const h = host({ rtt: 20 });
    const w = new ReceiveWindow(h, 2 * MiB);
    w.open(2 * MiB);
    expect(new Set(run(h, w, { rate: 1000, rtt: 20 }, 10))).toEqual(new Set([2 * MiB])); // 8 Mbit/s: 2 MiB is plenty
    const blind = host({ rtt: -1 });
    const w2 = new ReceiveWindow(blind, 2 * MiB);
    w2.open(2 * MiB);
    expect(new Set(run(blind, w2, { rate: 1e9, rtt: 100 }, 10))).toEqual(new Set([2 * MiB]));
  });

  test("after idling it falls back to the base window by withholding credit, never by revoking it", () => {
    const h = host();
    const w = new ReceiveWindow(h, 2 * MiB);
    w.open(2 * MiB);
    run(h, w, { rate: 1e9, rtt: 100 }, 8);
    expect(w.size).toBe(16 * MiB);
    w.idleCheck(); // bytes moved since the last check
    expect(w.size).toBe(16 * MiB);
    w.idleCheck(); // nothing moved for a whole check
    expect(w.size).toBe(2 * MiB);
    // The peer still holds 16 MiB of credit and uses it: credit comes back only once it is below 2 MiB.
    const held = w.credit;
    expect(held).toBe(16 * MiB);
    let returned = 0;
    for (let used = 0; used < held; used += 64 * KiB) {
      expect(w.take(64 * KiB)).toBe(true);
      const inc = w.written(64 * KiB, 0);
      returned += inc;
      expect(w.credit).toBeGreaterThanOrEqual(0);
      if (held - used - 64 * KiB > 2 * MiB) expect(inc).toBe(0);
    }
    expect(w.credit).toBe(2 * MiB); // back to the base window outstanding
    expect(returned).toBe(2 * MiB);
    expect(w.reserved).toBe(0);
    expect(h.inbound.bytes).toBe(0);
    expect(w.take(2 * MiB + 1)).toBe(false); // more than granted: a flow-control error
  });

  test("credit goes back in batches of a quarter window, at most 128 KiB; the release gives the reservation back", () => {
    const h = host();
    const w = new ReceiveWindow(h, 64 * KiB);
    w.take(64 * KiB);
    expect(w.written(15 * KiB, 49 * KiB)).toBe(0);
    expect(w.written(KiB, 48 * KiB)).toBe(16 * KiB); // a quarter of the 64 KiB opening window
    expect(w.written(48 * KiB, 0)).toBe(48 * KiB);
    expect(w.open(2 * MiB)).toBe(2 * MiB - 64 * KiB); // the ACK's WINDOW
    w.take(1 * MiB);
    expect(w.written(CREDIT_BATCH_MAX_BYTES - 1, MiB - CREDIT_BATCH_MAX_BYTES + 1)).toBe(0);
    expect(w.written(1, MiB - CREDIT_BATCH_MAX_BYTES)).toBe(CREDIT_BATCH_MAX_BYTES);
    expect(w.written(MiB - CREDIT_BATCH_MAX_BYTES, 0)).toBe(MiB - CREDIT_BATCH_MAX_BYTES);
    run(h, w, { rate: 1e9, rtt: 100 }, 4);
    expect(h.inbound.bytes).toBeGreaterThan(0);
    w.release();
    expect(h.inbound.bytes).toBe(0);
  });
});
