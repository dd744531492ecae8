/**
 * Smooth weighted round robin (nginx's) as an index: the same choices as scanning every candidate per pick, in
 * O(distinct weights + log n) per pick and O(log n) per join, leave or change.
 *
 * A scan adds each available candidate's weight to its `current`, takes the highest (the earliest joined on ties)
 * and takes the round's total weight off the winner. Here `current = base + round · weight` is kept implicitly:
 * candidates of one weight gain alike, so their order never changes between picks and one heap per weight (by base,
 * then join order) holds them; a pick compares the tops of the weight groups only. A candidate that sits out a round
 * (excluded by the caller) has its base lowered by its weight; one that is unavailable leaves the heaps and keeps its
 * `current` as a plain number until it comes back.
 */

/** A candidate in a {@link SmoothWeighted} index. Fields are the index's; callers read `value` and `weight`. */
export interface WeightedEntry<T> {
  readonly value: T;
  weight: number;
  /** Join order: ties go to the lowest. */
  readonly seq: number;
  /** current − round · weight while available; `current` itself while not. */
  base: number;
  available: boolean;
  /** Position in its weight group's heap (−1: in none). */
  heapIndex: number;
}

/** Binary max-heap of one weight group, ordered by base (higher first), then seq (lower first). */
class Group<T> {
  readonly items: WeightedEntry<T>[] = [];

  private before(a: WeightedEntry<T>, b: WeightedEntry<T>): boolean {
    return a.base > b.base || (a.base === b.base && a.seq < b.seq);
  }

  push(e: WeightedEntry<T>): void {
    e.heapIndex = this.items.length;
    this.items.push(e);
    this.up(e.heapIndex);
  }

  remove(e: WeightedEntry<T>): void {
    const i = e.heapIndex;
    const last = this.items.pop() as WeightedEntry<T>;
    e.heapIndex = -1;
    if (last === e) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.up(i);
    this.down(last.heapIndex);
  }

  /** Restores order after `e.base` decreased. */
  lowered(e: WeightedEntry<T>): void {
    this.down(e.heapIndex);
  }

  private up(i: number): void {
    const items = this.items;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(items[i] as WeightedEntry<T>, items[p] as WeightedEntry<T>)) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const items = this.items;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= items.length) return;
      const r = l + 1;
      const c = r < items.length && this.before(items[r] as WeightedEntry<T>, items[l] as WeightedEntry<T>) ? r : l;
      if (!this.before(items[c] as WeightedEntry<T>, items[i] as WeightedEntry<T>)) return;
      this.swap(i, c);
      i = c;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.items[i] as WeightedEntry<T>;
    const b = this.items[j] as WeightedEntry<T>;
    this.items[i] = b;
    this.items[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }
}

/** The outcome of one {@link SmoothWeighted.round}: the leading entry (null if none) with its current, and the round's total weight. */
export interface Round<T> {
  best: WeightedEntry<T> | null;
  current: number;
  total: number;
}

/** The index. Entries start unavailable with current 0. */
export class SmoothWeighted<T> {
  private round_ = 0;
  private nextSeq = 0;
  private availableWeight = 0;
  private readonly groups = new Map<number, Group<T>>();

  /** A new candidate (unavailable until {@link setAvailable}); later joins lose ties to earlier ones. */
  join(value: T, weight: number): WeightedEntry<T> {
    return { value, weight, seq: this.nextSeq++, base: 0, available: false, heapIndex: -1 };
  }

  /** Makes a candidate take part in rounds (true) or sit them out, keeping its current (false). Idempotent. */
  setAvailable(e: WeightedEntry<T>, available: boolean): void {
    if (e.available === available) return;
    if (available) {
      e.base -= this.round_ * e.weight;
      e.available = true;
      this.availableWeight += e.weight;
      this.group(e.weight).push(e);
    } else {
      this.groups.get(e.weight)?.remove(e);
      e.available = false;
      this.availableWeight -= e.weight;
      e.base += this.round_ * e.weight;
    }
  }

  /** Removes a candidate for good. */
  leave(e: WeightedEntry<T>): void {
    this.setAvailable(e, false);
  }

  /** Changes a weight; the current is kept. */
  setWeight(e: WeightedEntry<T>, weight: number): void {
    if (e.weight === weight) return;
    const was = e.available;
    this.setAvailable(e, false);
    e.weight = weight;
    this.setAvailable(e, was);
  }

  /** The current of an entry (its smooth round-robin position). */
  currentOf(e: WeightedEntry<T>): number {
    return e.available ? e.base + this.round_ * e.weight : e.base;
  }

  /**
   * One round: every available entry but those in `skip` gains its weight; returns the leader and the total. The
   * caller then charges the round's winner (it may be none of these: {@link charge} only for ours).
   */
  round(skip: readonly WeightedEntry<T>[]): Round<T> {
    this.round_++;
    let total = this.availableWeight;
    const skipped: WeightedEntry<T>[] = [];
    for (const e of skip) {
      if (!e.available || e.heapIndex < 0) continue;
      this.groups.get(e.weight)?.remove(e);
      total -= e.weight;
      skipped.push(e);
    }
    let best: WeightedEntry<T> | null = null;
    let current = 0;
    for (const [weight, g] of this.groups) {
      const top = g.items[0];
      if (top === undefined) continue;
      const c = top.base + this.round_ * weight;
      if (best === null || c > current || (c === current && top.seq < best.seq)) {
        best = top;
        current = c;
      }
    }
    for (const e of skipped) {
      e.base -= e.weight; // it did not gain this round
      this.groups.get(e.weight)?.push(e);
    }
    return { best, current, total };
  }

  /** Takes `total` off the current of this round's winner `e`. */
  charge(e: WeightedEntry<T>, total: number): void {
    e.base -= total;
    if (e.available) this.groups.get(e.weight)?.lowered(e);
  }

  private group(weight: number): Group<T> {
    let g = this.groups.get(weight);
    if (g === undefined) {
      g = new Group<T>();
      this.groups.set(weight, g);
    }
    return g;
  }
}
