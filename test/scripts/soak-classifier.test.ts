/**
 * The soak's failure classifier (scripts/soak/classify.ts) and its access-line matching (scripts/soak/access.ts):
 * streams shaped like the ones a soak run settles, with the faults the soak injects, each classified by the rule in
 * RELIABILITY.md (a failure needs a fault on its path, within that fault's bound).
 */
import { describe, expect, test } from "bun:test";
import { AccessBook, accessKey, accessKeyOf, parseAccessLine, type AccessLine } from "../../scripts/soak/access.ts";
import {
  classify,
  corruptBytes,
  expectationsMissed,
  verifiedBytes,
  type FaultBounds,
  type FaultFacts,
  type StreamOutcome,
} from "../../scripts/soak/classify.ts";
import type { ConnFault } from "../../scripts/soak/proxy.ts";
import { NEVER, type TargetResult } from "../../scripts/soak/wire.ts";

const T = 1_760_000_000_000; // wall-clock ms the stream started
const UP = 1_048_576;
const DOWN = 2_097_152;
/** The soak's bounds with its default heartbeat 500/2000 ms and drain grace 5000 ms. */
const BOUNDS: FaultBounds = { cutMs: 1500, killMs: 2500, blackholeMs: 4000, agentMs: 7000 };
const NO_FAULTS: FaultFacts = { connFaults: [], agentStops: [], outages: [] };

/** A server's JSON access-log line as src/server/stats.ts writes it. */
function accessJson(fields: Record<string, unknown>): string {
  return JSON.stringify({
    time: "2025-10-09T08:53:20.812Z",
    level: "info",
    tag: "access",
    msg: "stream closed",
    visitor: "127.0.0.1:40312",
    route: "127.0.0.1:39001",
    cluster: "soak",
    service: "target",
    host: "agent-2",
    connectionId: "3fa9c1-7",
    bytesIn: UP,
    bytesOut: DOWN,
    durationMs: 812,
    reason: "fin",
    ...fields,
  });
}

function access(fields: Record<string, unknown> = {}, at = T + 815): AccessLine {
  return parseAccessLine(JSON.parse(accessJson(fields)), at);
}

function targetResult(over: Partial<TargetResult> = {}): TargetResult {
  return { id: 41, upRecv: UP, mismatchAt: -1, eof: true, error: null, downSent: DOWN, aborted: false, openedAt: T + 2, closedAt: T + 810, idleKilled: false, ...over };
}

/** A clean 1 MiB up / 2 MiB down stream through server 0 on agent-2's connection 3fa9c1-7, 812 ms long. */
function stream(over: Partial<StreamOutcome> = {}): StreamOutcome {
  return {
    server: 0,
    h: { streamId: 41, upSeed: 0x1234abcd, upBytes: UP, downSeed: 0x0badf00d, downBytes: DOWN, targetClose: "early", targetSlowMs: 0, targetAbortAt: NEVER, targetChunk: 16_384 },
    visitorAbortAfter: NEVER,
    startedAt: T,
    closedAt: T + 812,
    upSent: UP,
    downRecv: DOWN,
    mismatchAt: -1,
    closeError: null,
    connectError: null,
    hangKilled: false,
    hang: false,
    targetOpen: false,
    target: targetResult(),
    access: access(),
    ...over,
  };
}

/** A stream cut mid-way: both ends saw a reset, the server logged a reset on the same connection. */
function resetMidway(closedAt = T + 450): StreamOutcome {
  return stream({
    closedAt,
    downRecv: 300_000,
    closeError: "ECONNRESET",
    target: targetResult({ upRecv: 500_000, error: "ECONNRESET", eof: false, downSent: 420_000, closedAt: closedAt - 5 }),
    access: access({ reason: "KEEPALIVE_TIMEOUT", bytesIn: 500_000, bytesOut: 300_000 }),
  });
}

const cut = (at: number): ConnFault => ({ kind: "cut", at });

describe("classify", () => {
  test("a stream that carried every byte both ways with clean ends is ok", () => {
    expect(classify(stream(), NO_FAULTS, BOUNDS)).toEqual({ kind: "ok" });
  });

  test("deliberate resets that both ends saw as resets are as designed", () => {
    const visitorReset = stream({
      visitorAbortAfter: 700_000,
      upSent: 400_000,
      downRecv: 300_000,
      closeError: "ECONNRESET",
      target: targetResult({ upRecv: 400_000, error: "ECONNRESET", eof: false, downSent: 350_000 }),
    });
    expect(classify(visitorReset, NO_FAULTS, BOUNDS)).toEqual({ kind: "reset-as-designed" });
    const targetReset = stream({
      h: { ...stream().h, targetAbortAt: 65_536 },
      downRecv: 65_536,
      closeError: "ECONNRESET",
      target: targetResult({ downSent: 65_536, aborted: true, error: null }),
    });
    expect(classify(targetReset, NO_FAULTS, BOUNDS)).toEqual({ kind: "reset-as-designed" });
  });

  test("a visitor that saw a clean end after the target reset is a silent truncation when only a cut explains it", () => {
    const r = stream({ h: { ...stream().h, targetAbortAt: 65_536 }, downRecv: 65_536, closeError: null });
    const m = expectationsMissed(r);
    expect(m).toEqual({ misses: ["visitor saw a clean end after the target reset (65536/2097152 B)"], silentTruncation: true });
    const v = classify(r, { ...NO_FAULTS, connFaults: [cut(T + 100)] }, BOUNDS);
    expect(v).toMatchObject({ kind: "silent-truncation", fault: { kind: "cut", at: T + 100 } });
  });

  test("a reset on a connection the proxy cut before the stream ended is explained, with its latency", () => {
    const v = classify(resetMidway(), { ...NO_FAULTS, connFaults: [cut(T + 400)] }, BOUNDS);
    expect(v).toEqual({
      kind: "explained",
      misses: ["visitor ECONNRESET at 300000/2097152 B down, 1048576/1048576 B up", "target ECONNRESET at 500000/1048576 B up, 420000/2097152 B down"],
      fault: { kind: "cut", at: T + 400, bound: 1500 },
      latencyMs: 50,
    });
  });

  test("a cut after the stream ended, or latency and stalls, explain nothing", () => {
    expect(classify(resetMidway(), { ...NO_FAULTS, connFaults: [cut(T + 451)] }, BOUNDS).kind).toBe("unexplained");
    const harmless: ConnFault[] = [
      { kind: "latency", at: T + 100, until: T + 3000, ms: 120 },
      { kind: "stall", at: T + 200, until: T + 1200 },
    ];
    expect(classify(resetMidway(), { ...NO_FAULTS, connFaults: harmless }, BOUNDS)).toMatchObject({ kind: "unexplained" });
  });

  test("a failure that ends later than its fault's bound is slow; the bound counts from the later of fault and start", () => {
    expect(classify(resetMidway(T + 2000), { ...NO_FAULTS, connFaults: [cut(T + 400)] }, BOUNDS)).toMatchObject({ kind: "slow", latencyMs: 1600 });
    // A cut before the stream started: counted from the start, 1400 ms ≤ 1500.
    expect(classify(resetMidway(T + 1400), { ...NO_FAULTS, connFaults: [cut(T - 5000)] }, BOUNDS)).toMatchObject({ kind: "explained", latencyMs: 1400 });
  });

  test("a blackhole explains a failure within heartbeat timeout + interval + 1.5 s", () => {
    const hole: ConnFault = { kind: "blackhole", at: T + 300, dir: "up" };
    expect(classify(resetMidway(T + 4200), { ...NO_FAULTS, connFaults: [hole] }, BOUNDS)).toMatchObject({ kind: "explained", fault: { kind: "blackhole", bound: 4000 }, latencyMs: 3900 });
    expect(classify(resetMidway(T + 4400), { ...NO_FAULTS, connFaults: [hole] }, BOUNDS)).toMatchObject({ kind: "slow", latencyMs: 4100 });
  });

  test("a clean end with bytes missing is accepted only when the server was SIGKILLed (the kernel sent the FIN)", () => {
    const truncated = stream({ closedAt: T + 600, downRecv: 1_000_000, target: targetResult({ upRecv: 700_000, closedAt: T + 600 }) });
    expect(expectationsMissed(truncated).silentTruncation).toBe(true);
    const killed: FaultFacts = { ...NO_FAULTS, outages: [{ killAt: T + 500, backAt: T + 2600 }] };
    expect(classify(truncated, killed, BOUNDS)).toMatchObject({ kind: "explained", fault: { kind: "server-kill", at: T + 500, bound: 2500 }, latencyMs: 100 });
    expect(classify(truncated, { ...NO_FAULTS, connFaults: [cut(T + 500)] }, BOUNDS)).toMatchObject({ kind: "silent-truncation" });
  });

  test("an agent drain explains a failure only on that agent's connection, and only while the stream was open", () => {
    const drained = resetMidway(T + 3000);
    const stop = { agent: "agent-2", at: T + 200, exitAt: T + 2900 };
    expect(classify(drained, { ...NO_FAULTS, agentStops: [stop] }, BOUNDS)).toMatchObject({ kind: "explained", fault: { kind: "agent-restart", bound: 7000 }, latencyMs: 2800 });
    expect(classify(drained, { ...NO_FAULTS, agentStops: [{ ...stop, agent: "agent-3" }] }, BOUNDS).kind).toBe("unexplained");
    // That agent had exited before this stream started: its drain cannot be the cause.
    expect(classify(drained, { ...NO_FAULTS, agentStops: [{ agent: "agent-2", at: T - 9000, exitAt: T - 100 }] }, BOUNDS).kind).toBe("unexplained");
    // Still draining (not exited yet) when the stream started: it is.
    expect(classify(drained, { ...NO_FAULTS, agentStops: [{ agent: "agent-2", at: T - 9000, exitAt: 0 }] }, BOUNDS).kind).toBe("explained");
  });

  test("a refused connect with no access line is explained while its server was down or not yet rejoined by every agent", () => {
    const refused = stream({ closedAt: T + 1, upSent: 0, downRecv: 0, connectError: "ECONNREFUSED", target: null, access: null });
    expect(expectationsMissed(refused)).toEqual({ misses: ["connect: ECONNREFUSED"], silentTruncation: false });
    const down: FaultFacts = { ...NO_FAULTS, outages: [{ killAt: T - 700, backAt: T + 1500 }] };
    expect(classify(refused, down, BOUNDS)).toMatchObject({ kind: "explained", fault: { kind: "server-down", at: T, bound: 1500 }, latencyMs: 1 });
    expect(classify(refused, { ...NO_FAULTS, outages: [{ killAt: T - 700, backAt: 0 }] }, BOUNDS).kind).toBe("explained");
    expect(classify(refused, { ...NO_FAULTS, outages: [{ killAt: T - 9000, backAt: T - 1 }] }, BOUNDS).kind).toBe("unexplained");
    // A stream the server logged reached it: "server down" does not cover it.
    expect(classify({ ...refused, connectError: null, closeError: "ECONNRESET", access: access({ reason: "REFUSED_STREAM" }) }, down, BOUNDS).kind).toBe("unexplained");
  });

  test("the connection's fault wins over a server kill in the same window", () => {
    const facts: FaultFacts = { ...NO_FAULTS, connFaults: [cut(T + 300)], outages: [{ killAt: T + 350, backAt: T + 2000 }] };
    expect(classify(resetMidway(), facts, BOUNDS)).toMatchObject({ fault: { kind: "cut" } });
  });

  test("any bad byte is corruption, whatever fault was on the path; a corrupt stream is not counted as a hang", () => {
    const r = stream({ downRecv: 2048, mismatchAt: 100, closeError: "ECONNRESET", hang: true });
    expect(classify(r, { ...NO_FAULTS, connFaults: [cut(T + 1)] }, BOUNDS)).toEqual({ kind: "corrupt", bytes: 1948 });
    const upside = stream({ target: targetResult({ mismatchAt: UP - 1 }) });
    expect(corruptBytes(upside)).toBe(1);
    expect(corruptBytes(stream({ mismatchAt: DOWN }))).toBe(1); // a bad byte is never counted as none
    expect(corruptBytes(stream())).toBe(0);
    expect(classify(upside, NO_FAULTS, BOUNDS)).toEqual({ kind: "corrupt", bytes: 1 });
    expect(classify(stream({ hang: true }), NO_FAULTS, BOUNDS)).toEqual({ kind: "hang" });
  });

  test("the target side: never saw it, still open, idle-killed, short write, clean end after a visitor reset", () => {
    expect(expectationsMissed(stream({ target: null })).misses).toEqual(["the target never saw the stream"]);
    expect(expectationsMissed(stream({ target: null, targetOpen: true })).misses).toEqual(["target still open"]);
    expect(expectationsMissed(stream({ target: targetResult({ idleKilled: true }) })).misses).toEqual(["target side idle-killed"]);
    expect(expectationsMissed(stream({ target: targetResult({ downSent: DOWN - 1 }) }))).toEqual({ misses: ["target wrote only 2097151/2097152 B"], silentTruncation: false });
    const afterReset = stream({ visitorAbortAfter: 10, closeError: "ECONNRESET", target: targetResult({ upRecv: 10 }) });
    expect(expectationsMissed(afterReset)).toEqual({ misses: ["target saw a clean end after the visitor reset (10/1048576 B)"], silentTruncation: true });
    expect(expectationsMissed(stream({ hangKilled: true, closeError: "ECONNRESET" })).misses[0]).toBe("visitor reset by the hang watchdog");
  });

  test("verified bytes stop at the first bad byte on each side", () => {
    expect(verifiedBytes(stream())).toBe(UP + DOWN);
    expect(verifiedBytes(stream({ mismatchAt: 10, target: targetResult({ mismatchAt: 20 }) }))).toBe(30);
    expect(verifiedBytes(stream({ downRecv: 5, target: null }))).toBe(5);
  });
});

describe("access lines", () => {
  test("parsed from a server's JSON log line, retried ones without a connection", () => {
    const a = access();
    expect(a).toEqual({ visitor: "127.0.0.1:40312", connectionId: "3fa9c1-7", host: "agent-2", reason: "fin", bytesIn: UP, bytesOut: DOWN, durationMs: 812, at: T + 815 });
    expect(accessKeyOf(1, a)).toBe(accessKey(1, 40312));
    const retried = parseAccessLine(JSON.parse(accessJson({ msg: "stream retried", connectionId: undefined, bytesIn: undefined, reason: "REFUSED_STREAM" })), T);
    expect(retried.connectionId).toBeUndefined();
    expect(retried.bytesIn).toBe(0);
  });

  test("a line that came before its stream opened is claimed by key, never one older than the stream", () => {
    const book = new AccessBook();
    const key = accessKey(0, 40312);
    book.park(key, access({}, T - 50)); // an earlier stream on the same port
    book.park(key, access({ reason: "CANCEL" }, T + 3));
    expect(book.claimByKey(key, T)?.reason).toBe("CANCEL");
    expect(book.claimByKey(key, T)).toBeNull();
    expect(book.claimByKey(accessKey(1, 40312), T - 100)).toBeNull();
    expect(book.size).toBe(1);
  });

  test("a visitor whose connect was reset is matched by time: its server, not fin, a port, closest to its end", () => {
    const book = new AccessBook();
    const line = (port: number, reason: string, at: number) => access({ visitor: `127.0.0.1:${port}`, reason }, at);
    book.park(accessKey(0, 40001), line(40001, "fin", T + 100));
    book.park(accessKey(0, 0), line(0, "REFUSED_STREAM", T + 101));
    book.park(accessKey(1, 40002), line(40002, "REFUSED_STREAM", T + 102));
    book.park(accessKey(0, 40003), line(40003, "REFUSED_STREAM", T + 400));
    book.park(accessKey(0, 40004), line(40004, "REFUSED_STREAM", T + 130));
    book.park(accessKey(0, 40005), line(40005, "REFUSED_STREAM", T - 1));
    book.park(accessKey(0, 40006), line(40006, "REFUSED_STREAM", T + 3200));
    expect(book.claimByTime(0, T, T + 120, 3000)?.visitor).toBe("127.0.0.1:40004");
    expect(book.claimByTime(0, T, T + 120, 3000)?.visitor).toBe("127.0.0.1:40003");
    expect(book.claimByTime(0, T, T + 120, 3000)).toBeNull();
    expect(book.claimByTime(1, T, T + 120, 3000)?.visitor).toBe("127.0.0.1:40002");
    book.prune(T + 200);
    expect(book.size).toBe(1); // only the line read at T + 3200 is left
  });

  test("on a tie in time the line parked first is taken", () => {
    const book = new AccessBook();
    book.park(accessKey(2, 40010), access({ visitor: "127.0.0.1:40010", reason: "CANCEL" }, T + 90));
    book.park(accessKey(2, 40011), access({ visitor: "127.0.0.1:40011", reason: "CANCEL" }, T + 110));
    expect(book.claimByTime(2, T, T + 100, 3000)?.visitor).toBe("127.0.0.1:40010");
  });
});
