/**
 * Registry.pick and Registry.add (src/server/registry.ts) on fake sessions: smooth weighted round robin gives exact
 * sequences per agent, draining and closed connections (reported by their session's onUnready) are skipped (and skipped agents do not save up turns), the
 * connection with the fewest open streams is picked within an agent, `exclude` leaves agents out, a run-time weight
 * lasts while the agent has a host, and `add` replaces a slot's connection only by the documented rules.
 */
import { describe, expect, test } from "bun:test";
import type { Session } from "../../src/mux/session.ts";
import { Registry, type Host } from "../../src/server/registry.ts";

/** The fields of a Session that pick() and add() read. */
interface FakeSession {
  closed: boolean;
  draining: boolean;
  activeStreams: number;
  silentForMs: number;
}

let nextId = 0;

/** A host of cluster "edge" (unless `cluster` is given) on a fresh, ready fake session. */
function host(hostName: string, opts: Partial<Omit<Host, "session">> & { session?: Partial<FakeSession> } = {}): Host & { fake: FakeSession } {
  const fake: FakeSession = { closed: false, draining: false, activeStreams: 0, silentForMs: 0, ...opts.session };
  const { session: _omit, ...rest } = opts;
  return {
    connectionId: `c${++nextId}`,
    cluster: "edge",
    hostName,
    weight: 1,
    slot: 0,
    instance: `${hostName}-i1`,
    remoteAddress: "127.0.0.1",
    connectedAt: 0,
    ...rest,
    session: fake as unknown as Session,
    fake,
  };
}

/** A session turns draining or closed, and says so (its onUnready event, which the registry relies on). */
function unready(r: Registry, h: (Host & { fake: FakeSession }) | undefined, how: "draining" | "closed"): void {
  if (h === undefined) throw new Error("no such host");
  h.fake[how] = true;
  r.unready(h);
}

/** The host names of `n` picks. */
function picks(r: Registry, n: number, exclude: ReadonlySet<string> | null = null, cluster = "edge"): string {
  let out = "";
  for (let i = 0; i < n; i++) out += r.pick(cluster, exclude)?.hostName ?? "-";
  return out;
}

/** A registry with one host per agent name and weight. */
function weighted(weights: Record<string, number>): { r: Registry; hosts: Record<string, Host & { fake: FakeSession }> } {
  const r = new Registry(["edge", "other"]);
  const hosts: Record<string, Host & { fake: FakeSession }> = {};
  for (const [name, weight] of Object.entries(weights)) {
    hosts[name] = host(name, { weight });
    r.add(hosts[name], 10_000);
  }
  return { r, hosts };
}

describe("smooth weighted round robin over agents", () => {
  test("5:1:1 gives a a b a c a a, over and over (nginx's sequence)", () => {
    const { r } = weighted({ a: 5, b: 1, c: 1 });
    expect(picks(r, 21)).toBe("aabacaa".repeat(3));
  });

  test("1:3 gives b a b b; equal weights alternate in the order agents joined", () => {
    expect(picks(weighted({ a: 1, b: 3 }).r, 8)).toBe("babbbabb");
    expect(picks(weighted({ x: 2, y: 2, z: 2 }).r, 6)).toBe("xyzxyz");
  });

  test("an agent's share does not depend on how many connections it has", () => {
    const { r } = weighted({ a: 1, b: 1 });
    for (let i = 1; i <= 3; i++) r.add(host("a", { slot: i }), 10_000);
    expect(picks(r, 6)).toBe("ababab");
  });

  test("an unknown cluster, or one without hosts, picks nothing", () => {
    const { r } = weighted({ a: 1 });
    expect(r.pick("nope")).toBeNull();
    expect(r.pick("other")).toBeNull();
    expect(r.has("other")).toBe(true);
    expect(r.has("nope")).toBe(false);
  });
});

describe("connections that cannot take a stream", () => {
  test("an agent whose only connection is draining or closed is skipped, and does not save up turns", () => {
    const { r, hosts } = weighted({ a: 5, b: 1, c: 1 });
    unready(r, hosts.b, "draining");
    expect(picks(r, 6)).toBe("aaacaa");
    // Back with a new connection: the rounds restart from where a and c stand (both at 0), with no burst of b.
    r.add(host("b", { slot: 1 }), 10_000);
    expect(picks(r, 7)).toBe("aabacaa");
    unready(r, hosts.c, "closed");
    expect(picks(r, 12)).not.toContain("c");
  });

  test("nothing ready: null", () => {
    const { r, hosts } = weighted({ a: 1, b: 2 });
    unready(r, hosts.a, "closed");
    unready(r, hosts.b, "draining");
    expect(r.pick("edge")).toBeNull();
  });

  test("a draining connection of an agent is skipped; its other connections still take its share", () => {
    const r = new Registry(["edge"]);
    const a0 = host("a", { slot: 0, session: { draining: true } });
    const a1 = host("a", { slot: 1, session: { activeStreams: 50 } });
    r.add(a0, 10_000);
    r.add(a1, 10_000);
    r.add(host("b"), 10_000);
    const got = Array.from({ length: 4 }, () => r.pick("edge"));
    expect(got.map((h) => h?.connectionId)).toEqual([a1.connectionId, expect.any(String), a1.connectionId, expect.any(String)]);
    expect(got.some((h) => h === a0)).toBe(false);
  });
});

describe("within an agent: the connection with the fewest open streams", () => {
  test("fewest streams wins; a tie goes to the connection that joined first; the choice follows the counts", () => {
    const r = new Registry(["edge"]);
    const hs = [5, 2, 7, 2].map((n, slot) => host("a", { slot, session: { activeStreams: n } }));
    for (const h of hs) r.add(h, 10_000);
    expect(r.pick("edge")).toBe(hs[1] as Host);
    (hs[1] as Host & { fake: FakeSession }).fake.activeStreams = 3;
    expect(r.pick("edge")).toBe(hs[3] as Host);
    (hs[0] as Host & { fake: FakeSession }).fake.activeStreams = 0;
    expect(r.pick("edge")).toBe(hs[0] as Host);
    unready(r, hs[0], "draining");
    expect(r.pick("edge")).toBe(hs[3] as Host);
  });
});

describe("exclude", () => {
  test("excluded agents are never picked and do not advance; all excluded: null", () => {
    const { r } = weighted({ a: 5, b: 1, c: 1 });
    expect(picks(r, 4, new Set(["a"]))).toBe("bcbc");
    // a's turn counter did not move while it was excluded: the full sequence resumes from b and c at 0.
    expect(picks(r, 7)).toBe("aabacaa");
    expect(r.pick("edge", new Set(["a", "b", "c"]))).toBeNull();
  });
});

describe("run-time weights", () => {
  test("setWeight changes the share at once and survives a reconnect while the agent keeps a host", () => {
    const { r, hosts } = weighted({ a: 1, b: 1, c: 1 });
    r.setWeight("edge", "a", 5);
    expect(r.weightOf("edge", "a")).toBe(5);
    // A second connection of a joins and the first leaves (a reconnect): the override stays.
    const a2 = host("a", { slot: 1, weight: 1 });
    r.add(a2, 10_000);
    r.remove(hosts.a as Host);
    expect(r.weightOf("edge", "a")).toBe(5);
    expect([...picks(r, 70)].filter((x) => x === "a").length).toBe(50);
  });

  test("forgotten when the agent's last host leaves: it comes back with its configured weight", () => {
    const { r, hosts } = weighted({ a: 1, b: 1 });
    r.setWeight("edge", "a", 9);
    r.remove(hosts.a as Host);
    expect(r.weightOf("edge", "a")).toBeUndefined();
    r.add(host("a", { weight: 2 }), 10_000);
    expect(r.weightOf("edge", "a")).toBe(2);
  });

  test("a weight set before the agent has a host applies when it joins; other clusters are not touched", () => {
    const r = new Registry(["edge", "other"]);
    r.setWeight("edge", "a", 7);
    r.add(host("a", { weight: 1 }), 10_000);
    r.add(host("a", { weight: 1, cluster: "other" }), 10_000);
    expect(r.weightOf("edge", "a")).toBe(7);
    expect(r.weightOf("other", "a")).toBe(1);
  });
});

describe("add: one connection per agent slot", () => {
  test("the same slot and instance: the old connection is replaced at once, and removing it later is harmless", () => {
    const r = new Registry(["edge"]);
    const old = host("a", { instance: "i1" });
    const fresh = host("a", { instance: "i1" });
    r.add(old, 10_000);
    expect(r.add(fresh, 10_000)).toEqual({ replaced: [old], shared: [] });
    expect(picks(r, 3)).toBe("aaa");
    expect(r.pick("edge")).toBe(fresh);
    r.remove(old); // the caller drains the replaced one and removes it when it closes
    expect([...r.hosts()]).toEqual([fresh]);
    expect(r.pick("edge")).toBe(fresh);
    r.remove(fresh);
    r.remove(fresh);
    expect(r.pick("edge")).toBeNull();
  });

  test("another instance in the same slot: kept (reported as shared) while live; replaced when draining, closed or silent too long", () => {
    const STALE_MS = 1_000;
    for (const [state, replaced] of [
      [{}, false],
      [{ silentForMs: STALE_MS }, false],
      [{ draining: true }, true],
      [{ closed: true }, true],
      [{ silentForMs: STALE_MS + 1 }, true],
    ] as const) {
      const r = new Registry(["edge"]);
      const other = host("a", { instance: "i1", session: state });
      const joining = host("a", { instance: "i2" });
      r.add(other, STALE_MS);
      const result = r.add(joining, STALE_MS);
      expect(result).toEqual(replaced ? { replaced: [other], shared: [] } : { replaced: [], shared: [other] });
      expect(new Set(r.hosts())).toEqual(new Set(replaced ? [joining] : [other, joining]));
    }
  });

  test("other slots of the same agent, and other agents in the same slot, are left alone", () => {
    const r = new Registry(["edge"]);
    const a0 = host("a", { slot: 0, instance: "i1", session: { draining: true } });
    const b0 = host("b", { slot: 0, instance: "i9", session: { closed: true } });
    r.add(a0, 1_000);
    r.add(b0, 1_000);
    expect(r.add(host("a", { slot: 1, instance: "i2" }), 1_000)).toEqual({ replaced: [], shared: [] });
    expect([...r.hosts()].length).toBe(3);
  });
});
