/** The soak's options (parsed from its command line by scripts/soak/main.ts) and the time limits derived from them. */
import type { FaultBounds } from "./classify.ts";

/** Everything `npm run soak -- …` can set. */
export interface Options {
  minutes: number;
  seed: number;
  agents: number;
  connections: number;
  visitors: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  drainGraceMs: number;
  checkpointEveryS: number;
  /** BUN_GARBAGE_COLLECTOR_LEVEL for servers and agents (0: Bun's default). */
  gcLevel: number;
  /** Restart every process; by default server-0 and agent-1 are never restarted (they show growth over the run). */
  restartAll: boolean;
  logDir: string;
  verbose: boolean;
}

/** A bad command line (message for the user), or `--help` (empty message). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** What `--help` and a bad command line print. */
export const USAGE =
  "usage: bun scripts/soak/main.ts [--minutes N] [--seed S] [--agents 3] [--connections 2] [--visitors 12]\n" +
  "       [--heartbeat-interval-ms 500] [--heartbeat-timeout-ms 2000] [--drain-grace-ms 5000]\n" +
  "       [--checkpoint-every 60] [--gc-level 1] [--restart-all] [--log-dir DIR] [--verbose]\n";

function defaults(now: Date): Options {
  return {
    minutes: 1,
    seed: now.getTime() % 1_000_000,
    agents: 3,
    connections: 2,
    visitors: 12,
    heartbeatIntervalMs: 500,
    heartbeatTimeoutMs: 2000,
    drainGraceMs: 5000,
    checkpointEveryS: 60,
    gcLevel: 0,
    restartAll: false,
    logDir: "",
    verbose: false,
  };
}

function num(name: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} needs a number`);
  return n;
}

/** Sets the option `key` (a flag such as `--minutes`) from `val()`, which consumes its value. */
function apply(o: Options, key: string, arg: string, val: () => string | undefined): void {
  switch (key) {
    case "--minutes": o.minutes = num("minutes", val()); break;
    case "--seed": o.seed = Math.floor(num("seed", val())); break;
    case "--agents": o.agents = Math.max(1, Math.floor(num("agents", val()))); break;
    case "--connections": o.connections = Math.max(1, Math.floor(num("connections", val()))); break;
    case "--visitors": o.visitors = Math.max(1, Math.floor(num("visitors", val()))); break;
    case "--heartbeat-interval-ms": o.heartbeatIntervalMs = num("heartbeat-interval-ms", val()); break;
    case "--heartbeat-timeout-ms": o.heartbeatTimeoutMs = num("heartbeat-timeout-ms", val()); break;
    case "--drain-grace-ms": o.drainGraceMs = num("drain-grace-ms", val()); break;
    case "--checkpoint-every": o.checkpointEveryS = Math.max(20, num("checkpoint-every", val())); break;
    case "--gc-level": o.gcLevel = Math.min(2, Math.floor(num("gc-level", val()))); break;
    case "--restart-all": o.restartAll = true; break;
    case "--log-dir": {
      const dir = val();
      if (dir === undefined) throw new UsageError("--log-dir needs a path");
      o.logDir = dir;
      break;
    }
    case "--verbose": o.verbose = true; break;
    case "--help": case "-h": throw new UsageError("");
    default: throw new UsageError(`unknown argument ${arg}`);
  }
}

/**
 * Parses the soak's arguments (`--name value` or `--name=value`). `now` gives the default seed and log directory.
 * @throws UsageError on a bad argument (or `--help`, with an empty message).
 */
export function parseOptions(argv: readonly string[], now = new Date()): Options {
  const o = defaults(now);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.indexOf("=");
    const [k, inline] = eq >= 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    apply(o, k, a, () => inline ?? argv[++i]);
  }
  if (o.minutes <= 0) throw new UsageError("--minutes must be > 0");
  if (o.logDir === "") o.logDir = `/tmp/backchannel-soak-${now.toISOString().replace(/[:.]/g, "-")}`;
  return o;
}

/** Time limits of the run, in ms, from the options (the fault bounds are the classifier's, scripts/soak/classify.ts). */
export interface Limits extends FaultBounds {
  /** No progress at either end of a stream for this long is a hang. */
  hangMs: number;
  /** A flagged hang still stuck after this long is reset by the visitor so that the soak can go on. */
  hangKillMs: number;
}

/** After a visitor closes, how long to wait for the target's result and the server's access-log line. */
export const SETTLE_WAIT_MS = 3000;

/** The limits for `o`'s heartbeat and drain settings. */
export function limitsFor(o: Options): Limits {
  const hangMs = o.heartbeatTimeoutMs + o.heartbeatIntervalMs + 3000;
  return {
    hangMs,
    hangKillMs: hangMs * 4,
    cutMs: 1500,
    // A server kill: 1.5 s plus one SYN retransmission (1 s) for a visitor whose SYN met the dying listener.
    killMs: 2500,
    blackholeMs: o.heartbeatTimeoutMs + o.heartbeatIntervalMs + 1500,
    agentMs: o.drainGraceMs + 2000,
  };
}
