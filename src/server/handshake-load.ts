/**
 * Admission of agent handshakes by measured capacity. The pending-handshake caps (TUNNEL_MAX_PENDING_HANDSHAKES,
 * _PER_IP) are upper bounds; while the process is busy (its CPU time over BUSY_SHARE of the last interval) the server
 * admits only as many handshakes as it can finish within half the handshake deadline at its measured CPU time per
 * handshake, and only a few while its event loop lags. Idle connections (a slowloris) cost no CPU: they meet the
 * caps only. A refusal
 * carries a retry time: refused agents are given distinct times at least 1 ms apart, spaced by the measured
 * (jittered) time per handshake after the expected drain of what is pending, so they come back at the rate the
 * server works them off rather than in one wave.
 *
 * Measuring: every SAMPLE_MS the process's CPU time (user + system) over the handshakes settled in that interval
 * (an upper estimate: other work counts too, which only makes admission more careful) and how late the sampling
 * timer fired (event-loop lag). Clock, CPU and randomness are injectable for tests.
 */

/** How often capacity is measured (ms). */
export const SAMPLE_MS = 100;
/** Event-loop lag above which no handshake is admitted beyond MIN_PENDING (ms). */
export const LAG_LIMIT_MS = 100;
/** Share of one core's time above which the process counts as busy. */
export const BUSY_SHARE = 0.8;
/** Handshakes always admitted (within the caps), whatever the measurements: progress under any load. */
export const MIN_PENDING = 16;
/** The assumed CPU time per handshake before any was measured (ms; a TLS handshake on a slow core). */
const INITIAL_CPU_MS = 2;
/** Retry times start at least this far ahead (ms). */
export const MIN_RETRY_MS = 100;
/** The longest retry time given (ms); a queue beyond it gets this (times may then repeat). */
export const MAX_RETRY_MS = 60_000;

/** Settings and injectable sources. */
export interface LoadOptions {
  maxPending: number;
  maxPendingPerIp: number;
  /** The handshake deadline (TUNNEL_HANDSHAKE_TIMEOUT_MS): the pending work must fit in half of it. */
  handshakeTimeoutMs: number;
  /** Wall clock, ms (an integer clock, as Date.now, keeps retry times distinct). */
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
  /** Measured CPU time per handshake, ms (exponentially weighted). */
  cpuPerHandshakeMs = INITIAL_CPU_MS;
  /** Measured event-loop lag, ms (the last interval's; decays by half per quiet interval). */
  lagMs = 0;
  /** CPU time over the last interval was above BUSY_SHARE of it. */
  busy = false;
  private readonly byIp = new Map<string, number>();
  private settledSinceSample = 0;
  private lastSampleAt: number;
  private lastCpuMs: number;
  private nextRetryAt = 0;
  private readonly now: () => number;
  private readonly cpuMs: () => number;
  private readonly random: () => number;
  private readonly timer: ReturnType<typeof setInterval> | null;

  constructor(private readonly o: LoadOptions) {
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

  /** How many handshakes may be pending now: the cap, or while busy the measured capacity within it. */
  limit(): number {
    const floor = Math.min(MIN_PENDING, this.o.maxPending);
    if (this.lagMs > LAG_LIMIT_MS) return floor;
    if (!this.busy) return this.o.maxPending;
    const capacity = Math.floor(this.o.handshakeTimeoutMs / 2 / Math.max(this.cpuPerHandshakeMs, 0.01));
    return Math.max(floor, Math.min(this.o.maxPending, capacity));
  }

  /** Admits a handshake from `ip` (true: a slot taken, give it back with settled()), or false when at a limit. */
  tryAdmit(ip: string): boolean {
    const perIp = this.byIp.get(ip) ?? 0;
    if (perIp >= this.o.maxPendingPerIp || this.pending >= this.limit()) return false;
    this.pending++;
    this.byIp.set(ip, perIp + 1);
    return true;
  }

  /** A handshake admitted from `ip` ended (either way). */
  settled(ip: string): void {
    this.pending--;
    this.settledSinceSample++;
    const n = (this.byIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.byIp.delete(ip);
    else this.byIp.set(ip, n);
  }

  /**
   * The retry delay for a refused connection (ms, an integer ≥ MIN_RETRY_MS): the next free retry time after the
   * expected drain of the pending handshakes, each time a jittered handshake-time (≥ 1 ms) after the previous one.
   */
  retryAfterMs(): number {
    const now = this.now();
    const drainAt = now + MIN_RETRY_MS + this.pending * this.cpuPerHandshakeMs;
    // At least 1 ms apart: with an integer clock, ceil keeps the given times distinct integers.
    const spacing = Math.max(1, this.cpuPerHandshakeMs * (0.5 + this.random()));
    this.nextRetryAt = Math.max(this.nextRetryAt, drainAt) + spacing;
    return Math.min(MAX_RETRY_MS, Math.ceil(this.nextRetryAt - now));
  }

  /** Takes one measurement (the timer calls it every SAMPLE_MS). */
  sample(): void {
    const now = this.now();
    const cpu = this.cpuMs();
    const elapsed = now - this.lastSampleAt;
    this.lagMs = Math.max(elapsed - SAMPLE_MS, this.lagMs / 2, 0);
    this.busy = elapsed > 0 && cpu - this.lastCpuMs > BUSY_SHARE * elapsed;
    if (this.settledSinceSample >= 4) {
      const perHandshake = (cpu - this.lastCpuMs) / this.settledSinceSample;
      this.cpuPerHandshakeMs = 0.7 * this.cpuPerHandshakeMs + 0.3 * perHandshake;
    }
    this.settledSinceSample = 0;
    this.lastSampleAt = now;
    this.lastCpuMs = cpu;
  }

  /** Stops measuring. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}
