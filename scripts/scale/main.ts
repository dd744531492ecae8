/**
 * `npm run scale [-- --quick] [-- --json]`: Backchannel at scale on loopback (issue 19; BENCHMARKS.md §Scale).
 *
 * A synthetic agent swarm written from SPEC.md (scripts/scale/frames.ts, agent-conn.ts: handshake, PONGs, echo
 * streams with window credit; not the agent's code) runs in `--procs` child processes (swarm-worker.ts), each
 * agent from its own loopback source address. Scenarios, each against fresh server processes started from these
 * sources: storm / steady / teardown (lifecycle.ts, per transport), restart (restart.ts, per transport), memory
 * (memory.ts), at the descriptor limit (fdlimit.ts) and the five-server `dns:` simulation (multi.ts). Server figures come from /proc (VmRSS, CPU time,
 * descriptors) and its admin endpoint; every wait is bounded by --timeout. The report ends with issue 19's
 * targets, met or not: nothing here asserts a figure.
 *
 * This file is the entry (it alone reads argv and exits); --help lists the options (options.ts).
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { Children } from "../bench/processes.ts";
import { table, type TargetRow } from "../bench/report.ts";
import { raiseFdLimit, type Kit } from "./kit.ts";
import { runFdLimit } from "./fdlimit.ts";
import { runLifecycle } from "./lifecycle.ts";
import { runMemory } from "./memory.ts";
import { runMulti } from "./multi.ts";
import { parseScaleOptions, USAGE, type ScaleOptions } from "./options.ts";
import { evaluateTargets, printResults, type ScaleResults } from "./report.ts";
import { runRestart } from "./restart.ts";

function machineInfo(o: ScaleOptions, fdLimit: number) {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    bun: Bun.version,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    loadavg: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    fdLimit,
    command: `bun scripts/scale/main.ts ${o.argv.join(" ")}`.trim(),
    serverEnv: o.serverEnv,
  };
}

/** Runs the selected scenarios in order; a scenario that throws is noted and the next one runs. */
async function runAll(kit: Kit): Promise<ScaleResults> {
  const o = kit.opts;
  const r: ScaleResults = { lifecycles: [], restarts: [], memory: null, fdLimit: null, multi: null };
  const attempt = async (name: string, f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      kit.notes.push(`${name} failed: ${(e as Error).message.split("\n")[0]}`);
      kit.progress(`${name} failed: ${(e as Error).stack ?? String(e)}`);
      await kit.kids.cleanup().catch(() => {});
      kit.kids = new Children();
    }
  };
  const has = (s: string) => o.scenarios.has(s as never);
  for (const t of o.transports) {
    if (has("storm") || has("steady") || has("teardown")) await attempt(`storm/steady/teardown (${t})`, async () => void r.lifecycles.push(await runLifecycle(kit, t)));
  }
  for (const t of o.transports) {
    if (has("restart")) await attempt(`restart (${t})`, async () => void r.restarts.push(await runRestart(kit, t)));
  }
  if (has("memory")) await attempt("memory", async () => void (r.memory = await runMemory(kit)));
  if (has("fdlimit")) await attempt("fd limit", async () => void (r.fdLimit = await runFdLimit(kit, o.fdLimit)));
  if (has("multi")) await attempt("multi-server", async () => void (r.multi = await runMulti(kit)));
  return r;
}

let opts: ScaleOptions;
try {
  opts = parseScaleOptions(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const kit: Kit = {
  opts,
  kids: new Children(),
  out: (s = "") => (opts.json ? process.stderr : process.stdout).write(`${s}\n`),
  progress: (s) => process.stderr.write(`${s}\n`),
  notes: [],
};
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    kit.progress(`\n${sig}: stopping everything the scale kit started`);
    void kit.kids.cleanup().then(() => process.exit(130));
  });
}
process.on("exit", () => kit.kids.killAll());

const fdLimit = raiseFdLimit();
const needed = opts.connections + 1_000;
if (fdLimit < needed) kit.notes.push(`descriptor limit ${fdLimit} is below the ${needed} this run needs per process: run \`ulimit -n 65536\` (or raise the hard limit) first`);
const started = performance.now();
const machine = machineInfo(opts, fdLimit);
kit.out(`Backchannel scale kit (${opts.quick ? "quick" : "full"}): ${machine.cpus} × ${machine.cpu}, Bun ${machine.bun}, Linux ${machine.kernel}, load ${machine.loadavg}, fd limit ${fdLimit}`);
if (Object.keys(opts.serverEnv).length > 0) kit.out(`Server environment added: ${Object.entries(opts.serverEnv).map(([k, v]) => `${k}=${v}`).join(" ")}`);
let code = 0;
try {
  const results = await runAll(kit);
  printResults(kit, results);
  const targets: TargetRow[] = evaluateTargets(kit, results);
  kit.out("\n## Targets (issue 19)\n");
  kit.out(table(["target", "measured", "met"], targets.map((t) => [t.target, t.value, t.met === null ? "n/a" : t.met ? "yes" : "**no**"])));
  for (const n of kit.notes) kit.out(`\nNote: ${n}`);
  kit.out(`\nTotal time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
  if (opts.json) process.stdout.write(`${JSON.stringify({ machine, mode: opts.quick ? "quick" : "full", results, targets, notes: kit.notes }, null, 2)}\n`);
} catch (e) {
  kit.progress(`scale kit failed: ${(e as Error).stack ?? String(e)}`);
  code = 1;
} finally {
  await kit.kids.cleanup();
}
process.exit(code);
