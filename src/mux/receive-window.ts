/**
 * The receiving half's flow control of one stream (SPEC.md §2.2): the credit the peer still has, the bytes written
 * to the local socket and not yet returned, and the window we aim to keep granted, which adapts to the stream.
 *
 * Adaptive window. quic-go and go-yamux double a window when a window's worth of bytes goes round in well under
 * a few RTTs; that settles between 2 and 4 bandwidth-delay products, and on a bottleneck with a FIFO queue the
 * excess waits in that queue in front of every other stream's bytes. Here the window aims at the BDP plus a small
 * standing queue instead: every epoch (a window's worth of bytes written to the local socket) gives the time one
 * window took to go round, `cycle = elapsed × window / bytes`. The window is the only thing in flight, so
 * `queueing = cycle − minRtt` is the delay our own window adds (or, with a slow local socket, its slowness). With
 * `slack` = minRtt/32 + 2 ms + one credit batch at the measured rate (noise, credit batching, event-loop hand-offs):
 * - queueing below slack: the window is what limits the stream, so it grows (only if the reservation against the
 *   inbound budgets succeeds, up to the maximum): it doubles until it first overshoots, then, the path's rate being
 *   known, by an eighth (or one slack's worth of bytes, rate × slack, if more) at a time, so probing never floods
 *   the bottleneck again;
 * - above 3 × slack: the window is larger than the path needs: rate × (minRtt + 2 × slack), at least the base, and
 *   by at most an eighth per epoch (one slow epoch, a pause of either end, does not cut a window far below the
 *   path's bandwidth-delay product: measured, such a cut cost a 100 ms stream 10–40% of its rate for seconds);
 * - in between: unchanged. The window settles about 2 slacks above the round trip (10 ms at 100 ms RTT).
 * Only epochs at the current window are measured: none while credit is withheld, and none right after a change.
 * A smaller window is reached by returning less credit (never by revoking any: the peer may rely on what it has),
 * and a window that went unused for a whole idle check (the session's heartbeat) falls back to the base.
 *
 * Credit is returned in batches of a quarter of the window, at most CREDIT_BATCH_MAX_BYTES, and once the stream's
 * rate is known at most CREDIT_BATCH_MS of it (not under CREDIT_BATCH_MIN_BYTES): a batch is a burst the sender
 * may put into a bottleneck queue at once (128 KiB is 10.5 ms at 100 Mbit/s), and the slack must cover it.
 */
import type { InboundTally } from "./inbound-queue.ts";
import { RoundTrip } from "./round-trip.ts";

/** Largest credit batch (see the file header). */
export const CREDIT_BATCH_MAX_BYTES = 128 * 1024;
/** Once the rate is known, a credit batch is at most this many ms of it, but not under CREDIT_BATCH_MIN_BYTES. */
const CREDIT_BATCH_MS = 2;
const CREDIT_BATCH_MIN_BYTES = 16 * 1024;
/** A doubling that raised the rate by less than this factor brought no gain. */
const NO_GAIN = 1.1;
/** Fixed part of the tolerated queueing delay, ms. */
const SLACK_MS = 2;

/** What a window needs from its session. */
export interface WindowHost {
  /** Where the growth of windows is reserved (with the bytes queued for local sockets). */
  readonly inbound: InboundTally;
  /** The smallest recent round trip (ms), or -1 while unknown (no tuning then). */
  readonly rttMinMs: number;
  /** The largest window a stream may grow to (bytes); ≤ the base window: no tuning. */
  readonly windowMaxBytes: number;
  /** Milliseconds clock (performance.now, or a test's). */
  now(): number;
  /** Whether `bytes` more may be reserved against the per-connection and per-process budgets. */
  mayReserve(bytes: number): boolean;
}

/** A session's WindowHost: its inbound tally, round trip, maximum window and clock. */
export class WindowContext implements WindowHost {
  /** PONG round trips (the windows use the smallest recent one). */
  readonly roundTrip = new RoundTrip();

  constructor(
    readonly inbound: InboundTally,
    readonly windowMaxBytes: number,
    readonly now: () => number,
  ) {}

  get rttMinMs(): number {
    return this.roundTrip.minMs;
  }

  mayReserve(bytes: number): boolean {
    return this.inbound.fits(bytes);
  }
}

/** One stream's receive window; the owning stream sends the WINDOW frames this returns. */
export class ReceiveWindow {
  /** Bytes the peer may still send before we return credit. */
  credit: number;
  /** Bytes written to the local socket but not yet returned to the peer as credit. */
  private owed = 0;
  /** The window we aim to keep granted: credit + queued + owed, once what we withhold has been used up. */
  size: number;
  /** The window without growth: the opening window until widened, then TUNNEL_STREAM_WINDOW_BYTES. */
  private base: number;
  private threshold: number;
  /** Growth counted in the inbound tally: what the peer may have outstanding above the base window. */
  reserved = 0;
  /** Bytes written to the local socket, ever. */
  private consumed = 0;
  /** Start of the current epoch (ms, -1: none) and `consumed` then. */
  private epochAt = -1;
  private epochBytes = 0;
  /** `consumed` at the last idle check. */
  private checkedBytes = 0;
  /** The current epoch follows a change of the window: not measured. */
  private settling = false;
  /** Growth doubles until the window first overshoots the path (then it grows by a slack's worth). */
  private probing = true;
  /** The last change was a doubling (so queueing now means an overshoot). */
  private doubled = false;
  /** The rate (bytes/ms) of the epoch that led to the last growth. */
  private rateBefore = 0;
  /** The rate (bytes/ms) of the last measured epoch, 0 before one (credit batches follow it). */
  private rate = 0;
  /** Tuning is on (set when the stream is acknowledged). */
  private tuning = false;

  constructor(
    private readonly host: WindowHost,
    window: number,
  ) {
    this.credit = window;
    this.size = window;
    this.base = window;
    this.threshold = batch(window);
  }

  /**
   * The stream is acknowledged: the base window becomes `openWindow`, and tuning starts. Returns the credit to
   * send now (the difference from the opening window; 0 if none).
   */
  open(openWindow: number): number {
    this.tuning = this.host.windowMaxBytes > openWindow;
    const extra = openWindow - this.base;
    if (extra <= 0) return 0;
    this.base = this.size = openWindow;
    this.threshold = batch(openWindow);
    this.credit += extra;
    return extra;
  }

  /** DATA of `len` bytes arrived: false if it exceeds the credit (a flow-control error). */
  take(len: number): boolean {
    if (len > this.credit) return false;
    this.credit -= len;
    return true;
  }

  /**
   * `n` bytes were written to the local socket, `queued` still wait for it. Returns the credit to return now as
   * one WINDOW (0: none yet).
   */
  written(n: number, queued: number): number {
    this.owed += n;
    this.consumed += n;
    if (this.owed < this.threshold) return 0;
    if (this.tuning) this.tune(queued);
    // Grant up to `size` outstanding: more than owed grows the window, less withholds what exceeds it.
    const inc = this.size - this.credit - queued;
    this.owed = 0;
    if (inc > 0) this.credit += inc;
    this.reserve(this.credit + queued - this.base);
    return inc > 0 ? inc : 0;
  }

  /**
   * Idle check (the session's heartbeat): a grown window through which nothing passed since the last check falls
   * back to the base window (credit returns only once what the peer holds is below it).
   */
  idleCheck(): void {
    if (this.consumed === this.checkedBytes && this.size > this.base) {
      this.resize(this.base);
      this.probing = true;
      this.epochAt = -1;
    }
    this.checkedBytes = this.consumed;
  }

  /** The stream ended: its growth is no longer reserved. */
  release(): void {
    this.reserve(0);
  }

  /**
   * At a credit update: once an epoch (a window's worth of bytes) is over, grow, shrink or keep the window (see
   * the file header). Epochs are measured only at the current window: none while credit is withheld, and the one
   * right after a change only lets the peer settle to the new window.
   */
  private tune(queued: number): void {
    const now = this.host.now();
    const rtt = this.host.rttMinMs;
    if (this.credit + queued + this.owed > this.size || rtt <= 0) {
      this.epochAt = -1; // withholding, or no round trip yet
      return;
    }
    const bytes = this.consumed - this.epochBytes;
    if (this.epochAt >= 0 && bytes < this.size) return;
    const elapsed = now - this.epochAt;
    const measured = this.epochAt >= 0 && !this.settling && elapsed > 0;
    this.epochAt = now;
    this.epochBytes = this.consumed;
    this.settling = false;
    if (!measured) return;
    const rate = bytes / elapsed;
    this.rate = rate;
    this.threshold = batch(this.size, rate);
    // The tolerated delay also covers one credit batch at the stream's rate: credit comes back in batches, so a
    // window below the path's BDP still shows that much of its own (3.5 ms at 300 Mbit/s, 10.5 ms at 100), and
    // without it a window could stay at its base for good. On loopback it is a fraction of a millisecond.
    const slack = rtt / 32 + SLACK_MS + this.threshold / rate;
    const queueing = (elapsed * this.size) / bytes - rtt;
    const doubled = this.doubled;
    this.doubled = false;
    if (doubled && rate < this.rateBefore * NO_GAIN) return this.undoDoubling();
    if (queueing < slack) {
      this.doubled = this.probing;
      this.rateBefore = rate;
      this.grow(this.probing ? this.size * 2 : this.size + Math.max(this.threshold, rate * slack, this.size / 8));
      return;
    }
    if (doubled) return this.overshot(rate, rtt, slack, queueing);
    if (queueing > 3 * slack) this.resize(Math.max(this.base, Math.round(rate * (rtt + 2 * slack)), Math.round((this.size * 7) / 8)));
  }

  /**
   * A doubling that did not speed the stream up is undone, and probing ends: the local socket (or the CPU), not
   * the window, sets the pace, and a larger window would only hold more bytes (on loopback, megabytes a stream).
   */
  private undoDoubling(): void {
    this.probing = false;
    this.resize(Math.max(this.base, Math.round(this.size / 2)));
  }

  /**
   * The epoch after a doubling showed queueing: probing ends (from now on growth is by eighths), and a doubling
   * that overshot the path is cut at once to the rate it measured × (RTT + 2 slacks), without the one-eighth limit
   * (the rate of a saturated epoch is the path's; a slow descent would keep a full bottleneck queue for seconds).
   */
  private overshot(rate: number, rtt: number, slack: number, queueing: number): void {
    this.probing = false;
    if (queueing > 3 * slack) this.resize(Math.max(this.base, Math.round(rate * (rtt + 2 * slack))));
  }

  private grow(to: number): void {
    const next = Math.min(this.host.windowMaxBytes, Math.round(to));
    if (next <= this.size) return;
    const need = next - this.base - this.reserved;
    if (need > 0 && !this.host.mayReserve(need)) return;
    this.resize(next);
  }

  private resize(size: number): void {
    this.size = size;
    this.threshold = batch(size, this.rate);
    this.settling = true;
  }

  /** Sets the reservation to `bytes` (≥ 0) in the inbound tally. */
  private reserve(bytes: number): void {
    const r = Math.max(0, bytes);
    if (r === this.reserved) return;
    this.host.inbound.charge(r - this.reserved);
    this.reserved = r;
  }
}

/** Credit batch for a window (see the file header). */
function batch(window: number, rate = 0): number {
  const byRate = rate > 0 ? Math.max(CREDIT_BATCH_MIN_BYTES, Math.round(rate * CREDIT_BATCH_MS)) : Infinity;
  return Math.max(1, Math.min(window >>> 2, CREDIT_BATCH_MAX_BYTES, byRate));
}
