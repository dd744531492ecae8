/**
 * A session's round trip (SPEC.md §2.2): PONG samples, the last one and the smallest of the recent ones. Adaptive
 * windows (receive-window.ts) compare how long a window takes to go round with the smallest: a PONG that waited
 * behind our own bulk bytes reads high, the quietest recent one is the path. Samples come from the PING sent right
 * after the handshake and from every heartbeat PING.
 */

/** Samples the minimum is taken over (at the default heartbeat, the last 30 s). */
const RECENT = 6;

/** The last and the smallest recent round trip of one session. */
export class RoundTrip {
  /** Last sample (ms), or -1. */
  lastMs = -1;
  /** Smallest of the last RECENT samples (ms), or -1 before the first. */
  minMs = -1;
  private readonly recent: number[] = [];
  private readonly scratch = new Uint8Array(8);

  /** A PING's 8 bytes: the time now (copied by the encoder, so one scratch buffer serves every PING). */
  stamp(): Uint8Array {
    new DataView(this.scratch.buffer).setFloat64(0, performance.now());
    return this.scratch;
  }

  /** A PONG's 8 bytes: the round trip (ms) since the PING they came with, or -1 if they make no sense. */
  pong(opaque: Uint8Array): number {
    const rtt = performance.now() - new DataView(opaque.buffer, opaque.byteOffset, 8).getFloat64(0);
    if (!(rtt >= 0 && rtt < 3_600_000)) return -1;
    this.note(rtt);
    return rtt;
  }

  /** A round trip of `ms` was measured. */
  note(ms: number): void {
    this.lastMs = ms;
    const r = this.recent;
    if (r.length === RECENT) r.shift();
    r.push(ms);
    this.minMs = Math.min(...r);
  }
}
