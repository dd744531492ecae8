/**
 * Admission of agent handshakes by measured capacity. TUNNEL_MAX_PENDING_HANDSHAKES is an upper bound; below it the
 * server admits every handshake while it keeps up, and only as many as it can finish within half the handshake
 * deadline at its measured rate once it does not: when even the quickest handshake settled in the last interval
 * took longer than that, or its event loop lags by a quarter of the deadline. (A storm is worked off fastest by
 * admitting it: every refusal costs an accept, and over TLS a handshake, and brings the agent back later.)
 * TUNNEL_MAX_PENDING_HANDSHAKES_PER_IP applies while slots are scarce: overloaded, or half the cap taken; so one
 * source (a NAT, a slowloris) cannot take every slot, and an idle server admits a storm from one address at once.
 *
 * A refusal carries a retry time: refused agents get distinct times at least 1 ms apart, spaced by the measured
 * (jittered) time per handshake after the expected drain of what is pending, so they come back at the rate the
 * server works them off rather than in one wave. Measured every SAMPLE_MS: handshakes answered and their durations
 * (a peer that never completes its handshake is its own problem, not a measure of the server),
 * the process's CPU time per settled handshake (the fallback pace before any rate is known), and how late the
 * sampling timer fired (event-loop lag). Clock, CPU and randomness are injectable for tests.
 */

/** Share of the handshake deadline admitted handshakes should be answered within (the rest is margin). */
export const BUDGET_SHARE = 0.5;
/** How often capacity is measured (ms). */
export const SAMPLE_MS = 100;
/** Handshakes always admitted (within the caps), whatever the measurements: progress under any load. */
export const MIN_PENDING = 16;
/** The assumed time per handshake before any was measured (ms; a TLS handshake on a 2020s core). */
const INITIAL_HANDSHAKE_MS = 0.5;
/** Retry times start at least this far ahead (ms). */
export const MIN_RETRY_MS = 100;
/** The longest retry time given (ms); a queue beyond it gets this (times may then repeat). */
export const MAX_RETRY_MS = 60_000;

/** Settings and injectable sources. */
export interface LoadOptions {
  maxPending: number;
  maxPendingPerIp: number;
  /** The handshake deadline (TUNNEL_HANDSHAKE_TIMEOUT_MS): admitted handshakes must finish within half of it. */
  handshakeTimeoutMs: number;
  /** Clock, ms (an integer clock, as Date.now, keeps retry times distinct). */
  now?: () => number;
  /** CPU time of the process so far, ms. */
  cpuMs?: () => number;
  random?: () => number;
  /** Starts the sampling timer (false in tests, which call sample()). */
  autoSample?: boolean;
}

/** Pending handshakes, the measured capacity, and retry times. */
export class HandshakeLoad {
  /** Handshakes in progress. */
  pending = 0;
  /** Measured handshakes answered per ms (exponentially weighted; 0 until measured). */
  ratePerMs = 0;
  /** Measured CPU time per answered handshake, ms (exponentially weighted). */
  cpuPerHandshakeMs = INITIAL_HANDSHAKE_MS;
  /** Measured event-loop lag, ms (the last interval's; decays by half per quiet interval). */
  lagMs = 0;
  /** Handshakes are not answered within half the deadline (or the loop lags): admission follows the measured rate. */
  overloaded = false;
  private readonly byIp = new Map<string, number>();
  private settledSinceSample = 0;
  private admittedSinceSample = 0;
  private quickestMs = Infinity;
  private lastSampleAt: number;
  private lastCpuMs: number;
  private nextRetryAt = 0;
  private readonly budgetMs: number;
  private readonly now: () => number;
  private readonly cpuMs: () => number;
  private readonly random: () => number;
  private readonly timer: ReturnType<typeof setInterval> | null;

  constructor(private readonly o: LoadOptions) {
    this.budgetMs = o.handshakeTimeoutMs * BUDGET_SHARE;
    this.now = o.now ?? Date.now;
    this.cpuMs = o.cpuMs ?? (() => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    });
    this.random = o.random ?? Math.random;
    this.lastSampleAt = this.now();
    this.lastCpuMs = this.cpuMs();
    this.timer = o.autoSample === false ? null : setInterval(() => this.sample(), SAMPLE_MS);
    this.timer?.unref?.();
  }

  /**
   * The measured time per handshake, ms: overloaded, the measured pace (handshakes answered per ms then measure
   * capacity, not demand); else the CPU time per handshake.
   */
  get handshakeMs(): number {
    return this.overloaded && this.ratePerMs > 0 ? 1 / this.ratePerMs : this.cpuPerHandshakeMs;
  }

  /** How many handshakes may be pending now: the cap, or while overloaded what the measured rate finishes in time. */
  limit(): number {
    const floor = Math.min(MIN_PENDING, this.o.maxPending);
    if (!this.overloaded) return this.o.maxPending;
    return Math.max(floor, Math.min(this.o.maxPending, Math.floor(this.budgetMs / this.handshakeMs)));
  }

  /** Admits a handshake from `ip` (true: a slot taken, give it back with settled()), or false when at a limit. */
  tryAdmit(ip: string): boolean {
    const perIp = this.byIp.get(ip) ?? 0;
    if (this.pending >= this.limit()) return false;
    const scarce = this.overloaded || this.pending * 2 >= this.o.maxPending;
    if (scarce && perIp >= this.o.maxPendingPerIp) return false;
    this.pending++;
    this.admittedSinceSample++;
    this.byIp.set(ip, perIp + 1);
    return true;
  }

  /** A handshake was answered (accepted or refused with a status) `durationMs` after its admission. */
  answered(durationMs: number): void {
    this.settledSinceSample++;
    this.quickestMs = Math.min(this.quickestMs, durationMs);
  }

  /** A handshake admitted from `ip` ended, either way (a timeout too): its slot is free. */
  settled(ip: string): void {
    this.pending--;
    const n = (this.byIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.byIp.delete(ip);
    else this.byIp.set(ip, n);
  }

  /**
   * The retry delay for a refused connection (ms, an integer ≥ MIN_RETRY_MS): the next free retry time after the
   * expected drain of the pending handshakes, each a jittered handshake-time (≥ 1 ms) after the previous one.
   */
  retryAfterMs(): number {
    const now = this.now();
    const per = this.handshakeMs;
    // What is pending is answered or timed out within the deadline, whatever the estimate says.
    const drainAt = now + MIN_RETRY_MS + Math.min(this.pending * per, this.budgetMs);
    // At least 1 ms apart: with an integer clock, ceil keeps the given times distinct integers.
    this.nextRetryAt = Math.max(this.nextRetryAt, drainAt) + Math.max(1, per * (0.5 + this.random()));
    return Math.min(MAX_RETRY_MS, Math.ceil(this.nextRetryAt - now));
  }

  /** Takes one measurement (the timer calls it every SAMPLE_MS). */
  sample(): void {
    const now = this.now();
    const cpu = this.cpuMs();
    const elapsed = now - this.lastSampleAt;
    const n = this.settledSinceSample;
    this.lagMs = Math.max(elapsed - SAMPLE_MS, this.lagMs / 2, 0);
    if (n >= 4 && elapsed > 0) {
      // Spread over what was admitted too: at a storm's front the CPU goes to handshakes not answered yet.
      this.cpuPerHandshakeMs = 0.7 * this.cpuPerHandshakeMs + 0.3 * ((cpu - this.lastCpuMs) / Math.max(n, this.admittedSinceSample));
      this.ratePerMs = this.ratePerMs === 0 ? n / elapsed : 0.7 * this.ratePerMs + 0.3 * (n / elapsed);
    }
    const slow = n > 0 ? this.quickestMs > this.budgetMs : this.overloaded && this.pending > 0;
    this.overloaded = slow || this.lagMs > this.budgetMs / 2;
    this.settledSinceSample = 0;
    this.admittedSinceSample = 0;
    this.quickestMs = Infinity;
    this.lastSampleAt = now;
    this.lastCpuMs = cpu;
  }

  /** Stops measuring. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}
