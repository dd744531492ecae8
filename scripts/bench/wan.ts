/**
 * `npm run bench -- --wan[=SET]`: the tunnel over emulated WAN links (issue 15). See BENCHMARKS.md, "WAN".
 *
 * One link process (scripts/bench/wan-link-process.ts, the model in scripts/lib/wan-link.ts) is reconfigured for
 * each point of the set (RTT, rate). Three paths cross the same link: **link only** (the visitor's own TCP
 * connection to the target goes through it: the ceiling), **tunnel** and **tunnel TLS** (the agent dials the
 * server through it, so every stream of the pair crosses it; visitors and target stay on plain loopback). For each
 * point, each test runs on the three paths back to back, their order rotated from test to test: 1 stream upload,
 * 1 stream download, 4 streams download (sum), and 1 KiB echoes at 100/s on a second stream while one stream
 * downloads. Transfers measure steady state after a warm-up (scripts/bench/wan-load.ts). The server's and the
 * agent's RSS is sampled every 100 ms through the whole run.
 */
import { opensslAvailable } from "../lib/certs.ts";
import type { LinkSettings } from "../lib/wan-link.ts";
import { rssKiB } from "../lib/proc.ts";
import type { PathDef } from "./figures.ts";
import type { WanOptions, WanPoint } from "./options.ts";
import { makeTlsFiles, quiesce, roleCommand, startPair, startTarget, stopPair, type Pair, type PairSpec, type Ports, type Service, type Target } from "./processes.ts";
import type { Bench } from "./run.ts";
import { downloadSteady, echoUnderLoad, uploadSteady } from "./wan-load.ts";
import { startLinkProcess, type LinkProcess } from "./wan-link-process.ts";

/** Name of the reference path. */
export const LINK_ONLY = "link only";

/** Figures of each point, in table order. */
export const WAN_FIGURES = {
  up1: "upload, 1 stream (Mbit/s)",
  down1: "download, 1 stream (Mbit/s)",
  down4: "download, 4 streams, sum (Mbit/s)",
  echoP50: "echo 1 KiB at 100/s during a 1-stream download: p50 (ms)",
  echoP99: "echo 1 KiB at 100/s during a 1-stream download: p99 (ms)",
  echoBulk: "the download meanwhile (Mbit/s)",
} as const;

/** "100 ms, 300 Mbit/s". */
export const pointLabel = (p: WanPoint) => `${p.rttMs} ms, ${p.mbit} Mbit/s`;
/** The key of one figure of one point in `Figures`. */
export const wanKey = (p: WanPoint, figure: string) => `${pointLabel(p)}: ${figure}`;

/** What the WAN run set up. */
export interface WanSetup {
  target: Target;
  link: LinkProcess;
  paths: PathDef[];
  pairs: Pair[];
  /** How each pair was started (to start it afresh at the next link). */
  specs: PairSpec[];
  /** Why there is no TLS pair ("" if there is). */
  tlsReason: string;
  /** The complete link settings of each point (queue limit included). */
  settings: Required<LinkSettings>[];
}

/** The link's settings for a point: the queue from --wan-queue-ms, else the link's default. */
export function linkSettings(w: WanOptions, p: WanPoint): LinkSettings {
  return { rttMs: p.rttMs, mbit: p.mbit, queueBytes: w.queueMs === undefined ? undefined : Math.round(((p.mbit * 1e6) / 8000) * w.queueMs) };
}

/** Starts the target, the link and the pairs whose agents dial through it. */
export async function setUpWan(b: Bench, w: WanOptions): Promise<WanSetup> {
  const o = b.opts;
  const target = await startTarget(b.kids);
  const link = await startLinkProcess(b.kids, linkSettings(w, w.points[0] as WanPoint));
  const services = Object.keys(target.ports) as Service[];
  const linkPorts = {} as Ports;
  for (const s of services) linkPorts[s] = await link.listen(target.ports[s] as number);
  const spec: PairSpec = { name: "tunnel", tls: null, command: roleCommand(o), extraEnv: o.tunnelEnv, idleStreams: o.idleStreams, via: (port) => link.listen(port) };
  const plain = await startPair(b.kids, target, spec);
  const pairs = [plain];
  const specs = [spec];
  let tlsReason = "";
  if (!o.wantTls) tlsReason = "--no-tls";
  else if (!opensslAvailable()) tlsReason = "openssl not installed (needed to make a throwaway certificate)";
  else {
    try {
      const tlsSpec = { ...spec, name: "tunnel TLS", tls: makeTlsFiles(b.kids) };
      pairs.push(await startPair(b.kids, target, tlsSpec));
      specs.push(tlsSpec);
    } catch (e) {
      tlsReason = (e as Error).message;
    }
  }
  if (tlsReason) b.notes.push(`TLS rows not available: ${tlsReason}`);
  const paths: PathDef[] = [{ name: LINK_ONLY, ports: linkPorts, pair: null }, ...pairs.map((p) => ({ name: p.name, ports: p.routes, pair: p }))];
  return { target, link, paths, pairs, specs, tlsReason, settings: [] };
}

/** Peak RSS of the pairs' processes (and the link's), overall and per point, sampled every 100 ms. */
export class RssPeaks {
  /** name → [server, agent] peak KiB over the whole run. */
  readonly overall = new Map<string, [number, number]>();
  /** point label → name → [server, agent] peak KiB. */
  readonly byPoint = new Map<string, Map<string, [number, number]>>();
  /** Peak RSS of the link process, KiB. */
  linkPeakKiB = 0;
  point = "";
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly pairs: Pair[],
    private readonly linkPid: number,
  ) {}

  private sample(): void {
    let at = this.byPoint.get(this.point);
    if (!at) this.byPoint.set(this.point, (at = new Map()));
    for (const p of this.pairs) {
      const now: [number, number] = [rssKiB(p.pids[0]), rssKiB(p.pids[1])];
      for (const m of [this.overall, at]) {
        const old = m.get(p.name) ?? [0, 0];
        m.set(p.name, [Math.max(old[0], now[0]), Math.max(old[1], now[1])]);
      }
    }
    this.linkPeakKiB = Math.max(this.linkPeakKiB, rssKiB(this.linkPid));
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), 100);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.sample();
  }
}

/** One WAN test, run on every path at every point. */
interface WanTest {
  id: string;
  run(path: PathDef, p: WanPoint): Promise<void>;
}

const mbitOf = (bytesPerSec: number) => (bytesPerSec * 8) / 1e6;

/** The tests, recording into `b.figures`. */
function wanTests(b: Bench, w: WanOptions): WanTest[] {
  const warm = (p: WanPoint) => Math.max(w.warmMinMs, w.warmRtts * p.rttMs);
  const rec = (p: WanPoint, fig: string, path: PathDef, v: number) => b.figures.record(wanKey(p, fig), path.name, v);
  const ms = w.measureMs;
  return [
    { id: "up1", run: async (path, p) => rec(p, WAN_FIGURES.up1, path, mbitOf(await uploadSteady(path.ports.sink, 1, warm(p), ms, p.rttMs))) },
    { id: "down1", run: async (path, p) => rec(p, WAN_FIGURES.down1, path, mbitOf(await downloadSteady(path.ports.source, 1, warm(p), ms))) },
    { id: "down4", run: async (path, p) => rec(p, WAN_FIGURES.down4, path, mbitOf(await downloadSteady(path.ports.source, 4, warm(p), ms))) },
    {
      id: "echo",
      async run(path, p) {
        const r = await echoUnderLoad(path.ports.echo, path.ports.source, warm(p), ms);
        rec(p, WAN_FIGURES.echoP50, path, r.p50);
        rec(p, WAN_FIGURES.echoP99, path, r.p99);
        rec(p, WAN_FIGURES.echoBulk, path, mbitOf(r.bulkBytesPerSec));
        if (r.unanswered > 0) b.figures.errors.push(`${pointLabel(p)} echo ${path.name}: ${r.unanswered} of ${r.count} echoes unanswered after 5 s`);
      },
    },
  ];
}

/**
 * Replaces every pair with a fresh one (same spec) after the link changed: a pair that stays up keeps the round trip
 * it measured on the previous link for up to 30 s (the PING minimum, SPEC.md §2.2), which is a path change, not
 * the path. In place, so the paths and the RSS sampler see the new processes.
 */
async function freshPairs(b: Bench, s: WanSetup): Promise<void> {
  for (let i = 0; i < s.pairs.length; i++) {
    const old = s.pairs[i] as Pair;
    await stopPair(b.kids, old);
    const pair = await startPair(b.kids, s.target, s.specs[i] as PairSpec);
    s.pairs[i] = pair;
    const path = s.paths.find((x) => x.pair === old);
    if (path !== undefined) {
      path.pair = pair;
      path.ports = pair.routes;
    }
  }
}

/**
 * Every test at every point on every path, `w.rounds` times; paths interleaved, their order rotated from test to
 * test. Before each run the target has no connection left and the link carries nothing. A failed run is an error
 * in the report, not the end.
 */
export async function runWanRounds(b: Bench, s: WanSetup, w: WanOptions, rss: RssPeaks): Promise<void> {
  const tests = wanTests(b, w).filter((t) => !b.opts.only || b.opts.only.includes(t.id));
  let turn = 0;
  for (let round = 0; round < w.rounds; round++) {
    for (const p of w.points) {
      const t0 = performance.now();
      const settings = await s.link.configure(linkSettings(w, p));
      if (round > 0 || p !== w.points[0]) await freshPairs(b, s);
      if (round === 0) s.settings.push(settings);
      rss.point = pointLabel(p);
      for (const test of tests) {
        for (let i = 0; i < s.paths.length; i++) {
          const path = s.paths[(i + turn) % s.paths.length] as PathDef;
          try {
            await quiesce(s.target);
            await s.link.waitIdle();
            await test.run(path, p);
          } catch (e) {
            b.figures.errors.push(`round ${round + 1} ${pointLabel(p)} ${test.id} ${path.name}: ${(e as Error).message}`);
          }
        }
        turn++;
      }
      b.progress(`round ${round + 1}/${w.rounds}: ${pointLabel(p)} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
}
