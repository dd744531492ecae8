/**
 * The benchmark's stages: set up the paths (direct, the tunnel pairs, the --ceiling references), run the rounds of
 * tests with paths interleaved and their order rotated each round, the extra comparisons (iperf3, wrk, ssh -R),
 * and the idle-stream memory run on a fresh pair.
 */
import { opensslAvailable } from "../lib/certs.ts";
import { rssKiB, rssSplitKiB, type RssSplit } from "../lib/proc.ts";
import { iperfExtra, sshMissing, startSocatRelays, startSshTunnel, wrkExtra, type Extra } from "./extras.ts";
import { benchTests, type Figures, type PathDef } from "./figures.ts";
import { holdIdle, upload } from "./load.ts";
import { PARALLEL, SSH, type BenchOptions } from "./options.ts";
import {
  baselineCommand,
  freePort,
  makeTlsFiles,
  quiesce,
  roleCommand,
  startPair,
  startRelays,
  startTarget,
  stopPair,
  type Children,
  type Pair,
  type PairSpec,
  type Ports,
  type Service,
  type Target,
} from "./processes.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One benchmark run: its options, what it started, what it measured, and where it writes. */
export interface Bench {
  readonly opts: BenchOptions;
  readonly kids: Children;
  readonly figures: Figures;
  /** Notes printed at the end of the report. */
  readonly notes: string[];
  /** The report (stdout, or stderr with --json). */
  out(s?: string): void;
  /** Progress lines (stderr). */
  progress(s: string): void;
}

/** The target and the paths to measure. */
export interface Setup {
  target: Target;
  plain: Pair;
  tlsPair: Pair | null;
  /** Why there are no TLS rows ("" if there are). */
  tlsReason: string;
  paths: PathDef[];
  /** The iperf3 command, when installed and extras are on (its server runs on `target.ports.iperf`). */
  iperf3: string | null;
}

async function startTlsPair(b: Bench, target: Target, spec: PairSpec): Promise<{ pair: Pair | null; reason: string }> {
  if (!b.opts.wantTls) return { pair: null, reason: "--no-tls" };
  if (!opensslAvailable()) return { pair: null, reason: "openssl not installed (needed to make a throwaway certificate)" };
  try {
    return { pair: await startPair(b.kids, target, { ...spec, name: "tunnel TLS", tls: makeTlsFiles(b.kids) }), reason: "" };
  } catch (e) {
    return { pair: null, reason: (e as Error).message };
  }
}

/** Starts the target (and an iperf3 server), the tunnel pairs and, with --ceiling, the reference relays. */
export async function setUp(b: Bench): Promise<Setup> {
  const o = b.opts;
  const target = await startTarget(b.kids);
  const iperf3 = o.extras ? Bun.which("iperf3") : null;
  if (iperf3) {
    const port = freePort();
    b.kids.add(Bun.spawn([iperf3, "-s", "-p", String(port)], { stdin: "ignore", stdout: "ignore", stderr: "ignore" }));
    target.ports.iperf = port;
  }
  const spec: PairSpec = { name: "tunnel", tls: null, command: roleCommand(o), extraEnv: o.tunnelEnv, idleStreams: o.idleStreams };
  const plain = await startPair(b.kids, target, spec);
  const base = o.baseline ? await startPair(b.kids, target, { ...spec, name: "baseline", command: baselineCommand(o), extraEnv: {} }) : null;
  const { pair: tlsPair, reason: tlsReason } = await startTlsPair(b, target, spec);
  if (tlsReason) b.notes.push(`TLS rows not available: ${tlsReason}`);
  const paths: PathDef[] = [
    { name: "direct", ports: target.ports, pair: null },
    { name: plain.name, ports: plain.routes, pair: plain },
    ...(tlsPair ? [{ name: tlsPair.name, ports: tlsPair.routes, pair: tlsPair }] : []),
    ...(base ? [{ name: base.name, ports: base.routes, pair: base }] : []),
  ];
  if (o.ceiling) {
    const relays = await startRelays(b.kids, target);
    paths.push({ name: "2 plain relays", ports: relays.ports, pair: relays.procs });
    try {
      const { iperf: _, ...services } = target.ports;
      paths.push({ name: "2 socat relays", ports: (await startSocatRelays(b.kids, services, freePort)) as Ports, pair: null });
    } catch (e) {
      b.notes.push(`socat reference path not available: ${(e as Error).message}`);
    }
  }
  return { target, plain, tlsPair, tlsReason, paths, iperf3 };
}

/** Every test on every path, `--rounds` times; a failed run is an error in the report, not the end. */
export async function runRounds(b: Bench, s: Setup): Promise<void> {
  const o = b.opts;
  const tests = benchTests(b.figures, o);
  for (let round = 0; round < o.rounds; round++) {
    const t0 = performance.now();
    for (const test of tests.filter((t) => !o.only || o.only.includes(t.id))) {
      for (let i = 0; i < s.paths.length; i++) {
        const path = s.paths[(i + round) % s.paths.length] as PathDef;
        await quiesce(s.target);
        try {
          await test.run(path);
        } catch (e) {
          b.figures.errors.push(`round ${round + 1} ${test.id} ${path.name}: ${(e as Error).message}`);
        }
      }
    }
    b.progress(`round ${round + 1}/${o.rounds} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** The extra comparisons: extra → metric → path → values, why some did not run, and the paths compared. */
export interface Extras {
  results: Record<string, Record<string, Record<string, number[]>>>;
  notes: string[];
  /** [name, ports]: direct first. */
  paths: [string, Partial<Ports>][];
}

/** The outside tools that are installed, each with the service it loads; adds the ssh -R path when possible. */
async function extraTools(b: Bench, s: Setup, x: Extras): Promise<[Extra, Service][]> {
  const list: [Extra, Service][] = [];
  const secs = b.opts.quick ? 1 : 2;
  const kids = b.kids;
  if (s.iperf3 && s.target.ports.iperf) {
    list.push([iperfExtra(kids, "1 stream", [], secs), "iperf"], [iperfExtra(kids, "1 stream -R", ["-R"], secs), "iperf"]);
    list.push([iperfExtra(kids, `-P ${PARALLEL}`, ["-P", String(PARALLEL)], secs), "iperf"]);
  } else x.notes.push("iperf3: skipped, not installed (apt-get install iperf3)");
  if (Bun.which("wrk")) list.push([wrkExtra(kids, secs), "http"]);
  else x.notes.push("wrk: skipped, not installed (apt-get install wrk)");
  const sshWhy = sshMissing();
  if (sshWhy) x.notes.push(sshWhy);
  else {
    try {
      const forward: Record<string, number> = { http: s.target.ports.http };
      if (s.target.ports.iperf) forward.iperf = s.target.ports.iperf;
      const fwd = await startSshTunnel(kids, forward, freePort);
      x.paths.push([SSH, fwd as Partial<Ports>]);
      x.notes.push("ssh -R: a throwaway OpenSSH sshd on loopback and one `ssh -N -R` client, default cipher and settings");
    } catch (e) {
      x.notes.push(`ssh -R: skipped, ${(e as Error).message}`);
    }
  }
  return list;
}

/** Runs the extra comparisons, interleaved direct / tunnel like the rest. */
export async function runExtras(b: Bench, s: Setup): Promise<Extras> {
  const x: Extras = { results: {}, notes: [], paths: [["direct", s.target.ports], [s.plain.name, s.plain.routes]] };
  if (s.tlsPair) x.paths.push([s.tlsPair.name, s.tlsPair.routes]);
  if (!b.opts.extras) {
    x.notes.push("extra comparisons skipped (--no-extras)");
    return x;
  }
  const list = await extraTools(b, s, x);
  const extraRounds = b.opts.quick ? 1 : 2;
  for (let round = 0; round < extraRounds; round++) {
    for (const [extra, service] of list) {
      for (let i = 0; i < x.paths.length; i++) {
        const [pname, ports] = x.paths[(i + round) % x.paths.length] as [string, Partial<Ports>];
        const port = ports[service];
        if (port === undefined) continue;
        try {
          const r = await extra.run(port);
          const e = (x.results[extra.name] ??= {});
          for (const [k, v] of Object.entries(r)) ((e[k] ??= {})[pname] ??= []).push(v);
        } catch (err) {
          b.figures.errors.push(`${extra.name} ${pname}: ${(err as Error).message}`);
        }
        await quiesce(s.target);
      }
    }
  }
  return x;
}

/** RSS of a fresh pair idle, with `idleStreams` idle streams open, and after they closed (KiB). */
export interface MemoryFigures {
  idleStreams: number;
  openSeconds: number;
  idleKiB: { server: number; agent: number };
  withStreamsKiB: { server: number; agent: number };
  afterCloseKiB: { server: number; agent: number };
  perStreamKiB: { server: number; agent: number; total: number };
  /** Idle, split into anonymous memory and file-backed pages (the Bun executable's code), before any stream. */
  idleSplitKiB: { server: RssSplit; agent: RssSplit };
  /** Right after a burst (8 uploading streams), and `restSeconds` later with nothing moving. */
  afterBurstKiB: { server: RssSplit; agent: RssSplit };
  restedKiB: { server: RssSplit; agent: RssSplit };
  restSeconds: number;
}

/** Seconds a pair rests after its burst before "RSS 60 s after a burst" is read (quick: shorter, labelled). */
const REST_SECONDS = { full: 60, quick: 15 };

/** The burst: 8 streams upload for 3 s (quick 1 s); then the pair rests. RSS of both processes after each. */
async function burstAndRest(pair: Pair, target: Target, quick: boolean) {
  const pids = [pair.server.proc.pid, pair.agent.proc.pid] as const;
  const split = () => ({ server: rssSplitKiB(pids[0]), agent: rssSplitKiB(pids[1]) });
  await upload(pair.routes.sink, 8, quick ? 1_000 : 3_000);
  const afterBurstKiB = split();
  await quiesce(target);
  const restSeconds = quick ? REST_SECONDS.quick : REST_SECONDS.full;
  await sleep(restSeconds * 1000);
  return { afterBurstKiB, restedKiB: split(), restSeconds };
}

/**
 * Memory with idle streams, on a fresh pair so earlier runs do not colour it: the figures (null if skipped or
 * failed) and the KiB per idle stream, server + agent (NaN if not measured).
 */
export async function runMemory(b: Bench, target: Target): Promise<{ figures: MemoryFigures | null; perStreamKiB: number }> {
  const o = b.opts;
  if (!o.memory) return { figures: null, perStreamKiB: NaN };
  const pair = await startPair(b.kids, target, { name: "memory", tls: null, command: roleCommand(o), extraEnv: {}, idleStreams: o.idleStreams });
  const [s0, a0] = pair.idleKiB;
  const pids = [pair.server.proc.pid, pair.agent.proc.pid] as const;
  const idleSplitKiB = { server: rssSplitKiB(pids[0]), agent: rssSplitKiB(pids[1]) };
  let hold: Awaited<ReturnType<typeof holdIdle>> | null = null;
  let memory: MemoryFigures | null = null;
  let perStreamKiB = NaN;
  try {
    const t0 = performance.now();
    hold = await holdIdle(pair.routes.echo, o.idleStreams);
    const openMs = performance.now() - t0;
    await sleep(1_000);
    const [s1, a1] = pids.map(rssKiB) as [number, number];
    perStreamKiB = (s1 - s0 + (a1 - a0)) / hold.count;
    await hold.close();
    hold = null;
    await quiesce(target);
    await sleep(500);
    const [s2, a2] = pids.map(rssKiB) as [number, number];
    const burst = await burstAndRest(pair, target, o.quick);
    memory = {
      ...burst,
      idleSplitKiB,
      idleStreams: o.idleStreams,
      openSeconds: openMs / 1000,
      idleKiB: { server: s0, agent: a0 },
      withStreamsKiB: { server: s1, agent: a1 },
      afterCloseKiB: { server: s2, agent: a2 },
      perStreamKiB: { server: (s1 - s0) / o.idleStreams, agent: (a1 - a0) / o.idleStreams, total: perStreamKiB },
    };
  } catch (e) {
    b.figures.errors.push(`idle streams: ${(e as Error).message}`);
    await hold?.close().catch(() => {});
  }
  await stopPair(b.kids, pair);
  return { figures: memory, perStreamKiB };
}
