/**
 * The scale kit's options (scripts/scale/options.ts), the swarm's source addresses and merged reports
 * (scripts/scale/fleet.ts), how a storm's figures are read from a report (scripts/scale/lifecycle.ts) and how the
 * server's refused-connections counter is found in /metrics (scripts/scale/fdlimit.ts).
 */
import { expect, test } from "bun:test";
import { mergeReports, sourceAddress } from "../../scripts/scale/fleet.ts";
import { refusedCounter } from "../../scripts/scale/fdlimit.ts";
import { stormFigures } from "../../scripts/scale/lifecycle.ts";
import { parseEnvList, parseScaleOptions, SCENARIOS } from "../../scripts/scale/options.ts";
import type { SwarmReport } from "../../scripts/scale/swarm.ts";

test("defaults are the issue's counts; --quick makes them smaller; every scenario runs unless listed", () => {
  const full = parseScaleOptions([]);
  expect(full).toMatchObject({ quick: false, connections: 10_000, memoryConnections: 500, multiAgents: 1_000, memoryStreamBytes: 1_048_576, transports: ["plaintext", "tls"] });
  expect([...full.scenarios]).toEqual([...SCENARIOS]);
  const quick = parseScaleOptions(["--quick", "--scenarios=storm,multi", "--tls=on", "--connections=300"]);
  expect(quick).toMatchObject({ quick: true, connections: 300, memoryConnections: 200, multiAgents: 200, transports: ["tls"] });
  expect([...quick.scenarios]).toEqual(["storm", "multi"]);
});

test("--server-env passes variables through (values may hold '='); bad values are refused with the option's name", () => {
  expect(parseScaleOptions(["--server-env=TUNNEL_MAX_CONNECTIONS=5000,TUNNEL_X=a=b"]).serverEnv).toEqual({ TUNNEL_MAX_CONNECTIONS: "5000", TUNNEL_X: "a=b" });
  expect(parseEnvList("")).toEqual({});
  expect(() => parseEnvList("NOVALUE")).toThrow(/--server-env: "NOVALUE"/);
  expect(() => parseScaleOptions(["--scenarios=steady,nope"])).toThrow(/unknown scenario "nope"/);
  expect(() => parseScaleOptions(["--connections=0"])).toThrow(/--connections/);
  expect(() => parseScaleOptions(["--tls=maybe"])).toThrow(/--tls/);
});

test("each agent has its own loopback source address, never .0 or .255, none shared over 100,000 agents", () => {
  const seen = new Set<string>();
  for (let k = 0; k < 100_000; k++) {
    const a = sourceAddress(k);
    const parts = a.split(".").map(Number);
    expect(parts[0]).toBe(127);
    expect(parts[1]).toBeGreaterThanOrEqual(1);
    expect(parts[3]).toBeGreaterThanOrEqual(1);
    expect(parts[3]).toBeLessThanOrEqual(250);
    seen.add(a);
  }
  expect(seen.size).toBe(100_000);
  expect(sourceAddress(0)).toBe("127.1.0.1");
});

const report = (over: Partial<SwarmReport>): SwarmReport => ({
  slots: 0, registered: 0, registeredSinceMark: 0, registrations: [], busy: 0, bareCloses: 0, connectErrors: 0, timeouts: 0, failures: 0, lost: 0,
  refusalHistogram: new Array(11).fill(0), carried: 0, echoedBytes: 0, streamsOpened: 0, errors: [], ...over,
});

test("merged reports add up and keep registration times in order", () => {
  const a = report({ slots: 3, registered: 3, registrations: [1, 5, 9], busy: 2, refusalHistogram: [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0] });
  const b = report({ slots: 2, registered: 1, registrations: [2, 3], bareCloses: 4, refusalHistogram: [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0] });
  const m = mergeReports(a, b);
  expect(m).toMatchObject({ slots: 5, registered: 4, registrations: [1, 2, 3, 5, 9], busy: 2, bareCloses: 4 });
  expect(m.refusalHistogram.slice(0, 4)).toEqual([1, 1, 1, 2]);
});

test("a storm's figures: all and 99% from the registration times, the most refusals and those refused more than twice", () => {
  const times = Array.from({ length: 100 }, (_, i) => 1000 + i * 10);
  const r = report({ slots: 100, registered: 100, registrations: times, refusalHistogram: [90, 5, 2, 2, 1, 0, 0, 0, 0, 0, 0] });
  expect(stormFigures(r, 1000, 7)).toMatchObject({ connections: 100, allMs: 990, p99Ms: 980, maxRefusals: 4, overTwice: 3, listenOverflows: 7 });
  const partial = stormFigures(report({ slots: 100, registered: 98, registrations: times.slice(0, 98) }), 1000, 0);
  expect(partial.allMs).toBeNaN();
  expect(partial.p99Ms).toBeNaN();
});

test("the server's refused-connections counter is found in /metrics by name, its samples summed; none: null", () => {
  const text = [
    "# HELP backchannel_server_connections_refused_total Connections refused at the cap.",
    "# TYPE backchannel_server_connections_refused_total counter",
    'backchannel_server_connections_refused_total{reason="cap"} 12',
    'backchannel_server_connections_refused_total{reason="fd"} 3',
    "backchannel_server_handshakes_total 40",
    "",
  ].join("\n");
  expect(refusedCounter(text)).toEqual({ name: "backchannel_server_connections_refused_total", value: 15 });
  expect(refusedCounter("backchannel_server_handshakes_total 40\nbackchannel_server_visitors_refused_total 2\n")).toBeNull();
  expect(refusedCounter('backchannel_server_limit_hits_total{limit="auth_penalty"} 3\nbackchannel_server_limit_hits_total{limit="connections"} 7\n'))
    .toEqual({ name: "backchannel_server_limit_hits_total", value: 7 });
});
