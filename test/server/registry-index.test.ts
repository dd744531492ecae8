/**
 * The indexed choice (src/server/cluster-hosts.ts, smooth-weighted.ts) against the scan it replaced
 * (test/support/registry-reference.ts): a seeded run of 100,000 joins, leaves, drains, weight changes, load changes,
 * raw connections and picks (with and without `exclude`) over two clusters gives the same host at every pick and the
 * same replacements at every join.
 */
import { describe, expect, test } from "bun:test";
import type { Session } from "../../src/mux/session.ts";
import { Registry, type Host, type RawHost } from "../../src/server/registry.ts";
import { ReferenceRegistry } from "../support/registry-reference.ts";
import { Prng } from "../support/protocol-prng.ts";

interface FakeSession {
  closed: boolean;
  draining: boolean;
  activeStreams: number;
  silentForMs: number;
}
type TestHost = Host & { fake: FakeSession };
type TestRaw = RawHost & { idleNow: boolean };

const CLUSTERS = ["edge", "other"];
const STALE_MS = 1_000;

/** A live set with O(1) random choice and removal. */
class Pool<T> {
  readonly items: T[] = [];
  private readonly at = new Map<T, number>();
  add(x: T): void {
    this.at.set(x, this.items.length);
    this.items.push(x);
  }
  delete(x: T): void {
    const i = this.at.get(x);
    if (i === undefined) return;
    const last = this.items.pop() as T;
    this.at.delete(x);
    if (last !== x) {
      this.items[i] = last;
      this.at.set(last, i);
    }
  }
  get size(): number {
    return this.items.length;
  }
}

function makeHost(rng: Prng, id: number): TestHost {
  const name = `a${rng.int(400)}`;
  const fake: FakeSession = { closed: false, draining: rng.int(50) === 0, activeStreams: rng.int(4), silentForMs: rng.int(4) === 0 ? STALE_MS + 1 : 0 };
  return {
    connectionId: `c${id}`,
    cluster: rng.pick(CLUSTERS),
    hostName: name,
    weight: rng.int(10) === 0 ? rng.range(1, 100) : rng.range(1, 10),
    slot: rng.int(3),
    instance: `${name}-i${rng.int(2)}`,
    remoteAddress: "127.0.0.1",
    connectedAt: 0,
    session: fake as unknown as Session,
    fake,
  };
}

function makeRaw(rng: Prng, id: number): TestRaw {
  const raw: TestRaw = {
    kind: "raw",
    connectionId: `r${id}`,
    cluster: rng.pick(CLUSTERS),
    hostName: rng.int(3) === 0 ? `a${rng.int(400)}` : `m${rng.int(20)}`,
    weight: rng.range(1, 10),
    remoteAddress: "127.0.0.1",
    remotePort: id,
    connectedAt: 0,
    idleNow: true,
    get idle() {
      return this.idleNow;
    },
    carrying: null,
    carry: () => { throw new Error("not in this test"); },
    retire() {},
    close() {},
  };
  return raw;
}

/** Runs `events` seeded events through both registries; returns the picks made and the mismatches found. */
function run(seed: number, events: number): { picks: number; nonNull: number; mismatches: string[] } {
  const rng = new Prng(seed);
  const indexed = new Registry(CLUSTERS);
  const reference = new ReferenceRegistry(CLUSTERS);
  const hosts = new Pool<TestHost>();
  const raws = new Pool<TestRaw>();
  const mismatches: string[] = [];
  let picks = 0;
  let nonNull = 0;
  let id = 0;
  const unready = (h: TestHost, how: "draining" | "closed"): void => {
    h.fake[how] = true;
    indexed.unready(h);
  };
  for (let i = 0; i < events && mismatches.length < 5; i++) {
    const r = rng.int(100);
    if (r < 22 || hosts.size === 0) {
      const h = makeHost(rng, ++id);
      const a = indexed.add(h, STALE_MS);
      const b = reference.add(h, STALE_MS);
      const ids = (x: { replaced: Host[]; shared: Host[] }) => `${x.replaced.map((y) => y.connectionId)}|${x.shared.map((y) => y.connectionId)}`;
      if (ids(a) !== ids(b)) mismatches.push(`event ${i}: add ${ids(a)} vs ${ids(b)}`);
      for (const old of a.replaced) {
        hosts.delete(old as TestHost);
        unready(old as TestHost, "draining"); // the server drains what a join replaced (no longer registered)
      }
      hosts.add(h);
    } else if (r < 35) {
      const h = rng.pick(hosts.items);
      unready(h, "closed"); // a session closes: onUnready, then onClose removes it
      indexed.remove(h);
      reference.remove(h);
      hosts.delete(h);
    } else if (r < 42) {
      unready(rng.pick(hosts.items), "draining");
    } else if (r < 45) {
      const h = rng.pick(hosts.items);
      const w = rng.range(1, 100);
      indexed.setWeight(h.cluster, h.hostName, w);
      reference.setWeight(h.cluster, h.hostName, w);
    } else if (r < 55) {
      rng.pick(hosts.items).fake.activeStreams = rng.int(5);
    } else if (r < 60) {
      const k = rng.int(3);
      if (k === 0 || raws.size === 0) {
        const raw = makeRaw(rng, ++id);
        indexed.addRaw(raw);
        reference.addRaw(raw);
        raws.add(raw);
      } else if (k === 1) {
        const raw = rng.pick(raws.items);
        raw.idleNow = !raw.idleNow;
      } else {
        const raw = rng.pick(raws.items);
        indexed.removeRaw(raw);
        reference.removeRaw(raw);
        raws.delete(raw);
      }
    } else {
      const cluster = rng.pick(CLUSTERS);
      let exclude: Set<string> | null = null;
      if (rng.int(5) === 0) {
        exclude = new Set();
        for (let n = rng.range(1, 3); n > 0; n--) exclude.add(rng.int(2) === 0 && hosts.size > 0 ? rng.pick(hosts.items).hostName : `m${rng.int(20)}`);
      }
      const raw = rng.int(4) !== 0;
      const a = indexed.pick(cluster, exclude, raw);
      const b = reference.pick(cluster, exclude, raw);
      picks++;
      if (a !== null) nonNull++;
      if (a !== b) mismatches.push(`event ${i}: pick ${a?.connectionId ?? "null"} vs ${b?.connectionId ?? "null"}`);
    }
  }
  return { picks, nonNull, mismatches };
}

describe("the indexed registry chooses exactly as the scan did", () => {
  test("a seeded sequence of 100,000 join/leave/drain/weight/raw/pick events: identical results", () => {
    const { picks, nonNull, mismatches } = run(0x5ca1e, 100_000);
    expect(mismatches).toEqual([]);
    expect(picks).toBeGreaterThan(35_000);
    expect(nonNull).toBeGreaterThan(30_000); // the run exercised real choices, not empty clusters
  });

  test("other seeds agree too (shorter runs)", () => {
    for (const seed of [1, 2, 3, 42, 1234]) expect(run(seed, 20_000).mismatches).toEqual([]);
  });
});
