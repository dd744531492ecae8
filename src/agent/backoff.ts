/**
 * Capped exponential backoff with full jitter (delay uniform in [0, min(cap, base·2^attempt)]), so agents that
 * lost the same server do not come back in lockstep; a server's retry time is honoured with a little jitter. The
 * random source is injectable for seeded tests.
 */

/** The most jitter added to a server's retry time (ms). */
export const HINT_JITTER_MAX_MS = 1_000;

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

  /**
   * The delay for a server's retry time (SERVER_BUSY `retry_after_ms`): the hint plus up to a tenth of it (at most
   * HINT_JITTER_MAX_MS) of jitter, so agents that got equal hints from different servers do not return together.
   * The exponent does not advance: the server said when it will have room.
   */
  hinted(retryAfterMs: number): number {
    return Math.floor(retryAfterMs + this.random() * Math.min(retryAfterMs / 10, HINT_JITTER_MAX_MS));
  }

  /** Back to the base after a healthy connection. */
  reset(): void {
    this.attempt = 0;
  }
}
