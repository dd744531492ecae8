/**
 * Capped exponential backoff with full jitter (delay uniform in [0, min(cap, base·2^attempt)]), so agents that
 * lost the same server do not come back in lockstep. The random source is injectable for seeded tests.
 */

/** Reconnect delays for one connection slot. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The next delay in ms, in [0, cap]; advances the exponent. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }

  /** A delay at the cap (auth failures must not hammer the server); advances the exponent too. */
  max(): number {
    this.attempt++;
    return Math.floor(this.capMs / 2 + (this.random() * this.capMs) / 2);
  }

  /** Back to the base after a healthy connection. */
  reset(): void {
    this.attempt = 0;
  }
}
