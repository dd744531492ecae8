/**
 * Streams waiting for room in a session's staging buffer (SessionCore): resumed oldest first once everything staged
 * was written. One that blocks again (it used its quantum, or it is a datagram stream past UDP's share) waits for
 * the next round.
 */

/** What a blocked stream does when resumed: stage what it can, and block again if it still cannot. */
export interface Pumpable {
  pump(): void;
}

/** The blocked streams of one session, with a count of DATA bytes staged (to tell a round that made progress). */
export class BlockedStreams<S extends Pumpable> {
  private readonly waiting = new Set<S>();
  /** DATA bytes staged so far on the session (SessionCore.sendData counts them). */
  staged = 0;

  /** @param canAccept true while the session's staging buffer takes more DATA. */
  constructor(private readonly canAccept: () => boolean) {}

  get size(): number {
    return this.waiting.size;
  }

  add(stream: S): void {
    this.waiting.add(stream);
  }

  delete(stream: S): void {
    this.waiting.delete(stream);
  }

  clear(): void {
    this.waiting.clear();
  }

  /**
   * Pumps the waiting streams in rounds over those waiting when the round starts, while `canAccept()`, until a
   * round stages nothing. Walking the live set instead would never end: a datagram stream past UDP's share blocks
   * again at once while TCP room remains.
   */
  resume(): void {
    while (this.waiting.size > 0) {
      const before = this.staged;
      for (const s of [...this.waiting]) {
        if (!this.canAccept()) return;
        this.waiting.delete(s);
        s.pump();
      }
      if (this.staged === before) return;
    }
  }
}
