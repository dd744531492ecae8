/**
 * `npm run bench [-- --quick] [-- --json]`: Backchannel's end-to-end benchmark on loopback. See BENCHMARKS.md.
 *
 * It starts everything it measures: a target process (sink, source, echo and HTTP services,
 * scripts/bench/target.ts), a plaintext server + agent pair and, when `openssl` exists, a TLS pair (each role its own
 * process, TUNNEL_LOG_LEVEL=warn, TUNNEL_ACCESS_LOG=off). The load generators (scripts/bench/load.ts) run in
 * this process. Every figure is measured on the direct path (visitor → target) and through each tunnel in the same
 * round, paths interleaved and their order rotated from round to round; the tables show medians with min–max and
 * the ratio tunnel/direct of the medians. Memory and CPU come from /proc/<pid>/status (VmRSS) and
 * /proc/<pid>/stat (utime + stime). iperf3 and wrk are used as extra comparisons when installed, over the direct
 * path, the tunnel and (with openssh-server and openssh-client installed) a throwaway `sshd` + `ssh -R` tunnel.
 *
 * Options: --quick (under a minute), --json (JSON document on stdout, the tables on stderr), --rounds=N,
 * --idle-streams=N, --bin=PATH (a compiled binary instead of the sources), --no-extras, --no-tls, --no-memory,
 * --tests=up1,down1,up8,down8,rr-paced,rr-closed,conn (a subset, for iterating), --baseline=DIR (one more
 * plaintext pair run from DIR/src/main.ts, another checkout, interleaved with the rest: A/B of a change),
 * --src=DIR (run the plaintext and TLS pairs from DIR/src/main.ts instead of this checkout), --ceiling (adds a
 * reference path through two minimal relays, scripts/bench/relay.ts: what two Bun processes in the path
 * can reach here without any tunnel logic; with socat installed also through two chains of socat relays, the same
 * hops in C),
 * --tunnel-env=K=V,K=V (extra variables for the plaintext and TLS pairs, not the baseline: A/B of a setting).
 * --wan[=SET] measures through emulated WAN links instead (scripts/bench/wan.ts); --help lists everything.
 * Nothing here asserts a figure: the targets section only reports met / not met.
 *
 * This file is the entry (it alone reads argv and exits). The parts: options.ts, processes.ts (target, pairs,
 * relays, cleanup), figures.ts (the tests), run.ts (the stages), report.ts (tables and targets), extras.ts.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { Figures } from "./figures.ts";
import { parseBenchOptions, USAGE, type BenchOptions, type WanOptions } from "./options.ts";
import { Children } from "./processes.ts";
import { evaluateTargets, memoryTargets, printEnd, printExtras, printFigures, printMemory, type TargetRow } from "./report.ts";
import { runExtras, runMemory, runRounds, setUp, type Bench } from "./run.ts";
import { printSni, runSni, sniSummary } from "./sni.ts";
import { printUdp, runUdp, udpSummary } from "./udp.ts";
import { printWs, runWs, wsSummary } from "./websocket.ts";
import { RssPeaks, runWanRounds, setUpWan } from "./wan.ts";
import { evaluateWanTargets, printWanFigures, printWanMemory, wanSummary } from "./wan-report.ts";

/** The JSON document of --json. */
interface Summary {
  machine: Record<string, unknown>;
  mode: string;
  rounds: number;
  paths: string[];
  figures: Record<string, Record<string, number[]>>;
  memory: Record<string, unknown>;
  extras: Record<string, unknown>;
  targets: TargetRow[];
  notes: string[];
  /** Routing by name (scripts/bench/sni.ts); null when --tests leaves it out. */
  sni: Record<string, unknown> | null;
  /** UDP (scripts/bench/udp.ts); null when --tests leaves it out. */
  udp: Record<string, unknown> | null;
  /** The WebSocket transport (scripts/bench/websocket.ts); null when --tests leaves it out. */
  ws: Record<string, unknown> | null;
}

function machineInfo(o: BenchOptions) {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    bun: Bun.version,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    loadavg: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    command: `bun scripts/bench/main.ts ${o.argv.join(" ")}`.trim(),
    runs: o.bin ? `compiled binary ${o.bin}` : "from source",
  };
}

async function main(b: Bench): Promise<Summary> {
  const started = performance.now();
  const machine = machineInfo(b.opts);
  b.out(`Backchannel benchmark (${b.opts.quick ? "quick" : "full"}): ${machine.cpus} × ${machine.cpu}, Bun ${machine.bun}, Linux ${machine.kernel}, load ${machine.loadavg}`);
  const setup = await setUp(b);
  await runRounds(b, setup);
  const extras = await runExtras(b, setup);
  const memory = await runMemory(b, setup.target);
  const sni = await runSni(b, setup.target);
  const udp = await runUdp(b);
  const ws = await runWs(b, setup.target);

  printFigures(b, setup);
  printMemory(b, setup.paths, memory.figures);
  const extraOut = printExtras(b, extras);
  const sniTargets = printSni(b, sni);
  const udpTargets = printUdp(b, udp);
  const wsTargets = printWs(b, ws);
  const targets = [...evaluateTargets(b.figures, setup, extras, memory.perStreamKiB), ...memoryTargets(memory.figures), ...sniTargets, ...udpTargets, ...wsTargets];
  printEnd(b, targets, started);

  const figures: Summary["figures"] = {};
  for (const [f, byPath] of b.figures.results) figures[f] = Object.fromEntries(byPath);
  const pairs = setup.paths.filter((p) => p.pair).map((p) => [p.name, { idleKiB: p.pair?.idleKiB, peakKiB: b.figures.peakKiB.get(p.name) }]);
  return {
    machine,
    mode: b.opts.quick ? "quick" : "full",
    rounds: b.opts.rounds,
    paths: setup.paths.map((p) => p.name),
    figures,
    memory: { ...memory.figures, pairs: Object.fromEntries(pairs) },
    extras: extraOut,
    targets,
    notes: [...b.notes, ...b.figures.errors],
    sni: sniSummary(sni),
    udp: udpSummary(udp),
    ws: wsSummary(ws),
  };
}

/** The WAN run (--wan): set up, measure, report; the JSON document of --json. */
async function mainWan(b: Bench, w: WanOptions): Promise<ReturnType<typeof wanSummary>> {
  const started = performance.now();
  const machine = machineInfo(b.opts);
  const set = w.points.map((p) => `${p.rttMs}/${p.mbit}`).join(", ");
  b.out(`Backchannel WAN benchmark (RTT ms / Mbit/s: ${set}): ${machine.cpus} × ${machine.cpu}, Bun ${machine.bun}, Linux ${machine.kernel}, load ${machine.loadavg}`);
  const setup = await setUpWan(b, w);
  const rss = new RssPeaks(setup.pairs, setup.link.pid);
  rss.start();
  try {
    await runWanRounds(b, setup, w, rss);
  } finally {
    rss.stop();
  }
  printWanFigures(b, setup, w);
  printWanMemory(b, setup, w, rss);
  const targets = evaluateWanTargets(b, setup, w, rss);
  printEnd(b, targets, started);
  return wanSummary(b, setup, w, rss, machine, targets);
}

let opts: BenchOptions;
try {
  opts = parseBenchOptions(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const bench: Bench = {
  opts,
  kids: new Children(),
  figures: new Figures(),
  notes: [],
  out: (s = "") => (opts.json ? process.stderr : process.stdout).write(`${s}\n`),
  progress: (s) => process.stderr.write(`${s}\n`),
};
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    bench.progress(`\n${sig}: stopping everything the benchmark started`);
    void bench.kids.cleanup().then(() => process.exit(130));
  });
}
process.on("exit", () => bench.kids.killAll());

let code = 0;
try {
  const summary = opts.wan ? await mainWan(bench, opts.wan) : await main(bench);
  if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
} catch (e) {
  bench.progress(`benchmark failed: ${(e as Error).stack ?? String(e)}`);
  code = 1;
} finally {
  await bench.kids.cleanup();
}
process.exit(code);
