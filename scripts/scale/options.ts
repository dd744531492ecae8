/** The scale kit's options (parsed from its command line by scripts/scale/main.ts) and their --quick values. */

/** The scenarios, in the order they run. */
export const SCENARIOS = ["storm", "steady", "teardown", "restart", "memory", "fdlimit", "multi"] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Everything `npm run scale -- …` can set. */
export interface ScaleOptions {
  argv: readonly string[];
  quick: boolean;
  json: boolean;
  scenarios: Set<Scenario>;
  /** Transports of storm / steady / teardown / restart. */
  transports: ("plaintext" | "tls")[];
  /** Agent connections of storm / steady / teardown / restart. */
  connections: number;
  /** Data connections per swarm agent (each agent has its own source address). */
  connsPerAgent: number;
  /** Swarm processes. */
  procs: number;
  /** Visitors of the steady run (4 KiB each). */
  visitors: number;
  memoryConnections: number;
  memoryStreamBytes: number;
  /** Seconds the memory run waits idle after the streams before reading RSS again. */
  restSeconds: number;
  /** Open-files limit of the server in the fdlimit scenario. */
  fdLimit: number;
  multiAgents: number;
  /** Visitors per server in each round of the multi-server run. */
  multiVisitors: number;
  /** Bound of each wait (all registered, re-registered, cleanup), seconds. */
  timeoutSeconds: number;
  /** One source address per agent (127.1.x.y); off: every connection from 127.0.0.1. */
  sources: boolean;
  seed: number;
  bin: string | undefined;
  src: string | undefined;
  /** Extra variables for every server (K=V,K=V). */
  serverEnv: Record<string, string>;
  help: boolean;
}

/** Parses `K=V,K=V` (a value may contain `=`, not `,`). Throws on an entry without `=`. */
export function parseEnvList(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of v.split(",").filter(Boolean)) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`--server-env: "${kv}" is not NAME=VALUE`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function positive(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: "${v}" is not a positive integer`);
  return n;
}

/** Parses the arguments; throws with a message on a bad value or an unknown scenario. */
export function parseScaleOptions(argv: readonly string[]): ScaleOptions {
  const flag = (name: string) => argv.includes(`--${name}`);
  const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = flag("quick");
  const only = opt("scenarios")?.split(",").filter(Boolean) ?? [...SCENARIOS];
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenarios: unknown scenario "${s}" (${SCENARIOS.join(", ")})`);
  const tls = opt("tls") ?? "both";
  if (!["both", "on", "off"].includes(tls)) throw new Error(`--tls: "${tls}" is not both, on or off`);
  return {
    argv,
    quick,
    json: flag("json"),
    scenarios: new Set(only as Scenario[]),
    transports: tls === "both" ? ["plaintext", "tls"] : tls === "on" ? ["tls"] : ["plaintext"],
    connections: positive("connections", opt("connections"), quick ? 2_000 : 10_000),
    connsPerAgent: positive("conns-per-agent", opt("conns-per-agent"), 2),
    procs: positive("procs", opt("procs"), 2),
    visitors: positive("visitors", opt("visitors"), quick ? 50 : 200),
    memoryConnections: positive("memory-connections", opt("memory-connections"), quick ? 200 : 500),
    memoryStreamBytes: positive("memory-stream-bytes", opt("memory-stream-bytes"), 1024 * 1024),
    restSeconds: positive("rest-seconds", opt("rest-seconds"), quick ? 6 : 12),
    fdLimit: positive("fd-limit", opt("fd-limit"), 1_024),
    multiAgents: positive("multi-agents", opt("multi-agents"), quick ? 200 : 1_000),
    multiVisitors: positive("multi-visitors", opt("multi-visitors"), quick ? 10 : 40),
    timeoutSeconds: positive("timeout", opt("timeout"), quick ? 30 : 60),
    sources: !flag("no-sources"),
    seed: positive("seed", opt("seed"), 19),
    bin: opt("bin"),
    src: opt("src"),
    serverEnv: parseEnvList(opt("server-env") ?? ""),
    help: flag("help") || flag("h"),
  };
}

/** `npm run scale -- --help`. */
export const USAGE = `npm run scale [-- OPTIONS]   Backchannel at scale: a synthetic agent swarm (BENCHMARKS.md §Scale)

  --quick                 smaller counts (under 5 minutes): 2,000 connections, 200 for memory, 200 agents × 5
  --json                  JSON document on stdout, the tables on stderr (use npm run --silent)
  --scenarios=LIST        a subset of ${SCENARIOS.join(",")} (storm, steady and
                          teardown share one server per transport)
  --tls=both|on|off       transports of storm / steady / teardown / restart (default both)
  --connections=N         agent connections (default 10000, quick 2000)
  --conns-per-agent=N     data connections per swarm agent (default 2; each agent has its own source address)
  --procs=N               swarm processes (default 2)
  --visitors=N            visitors of the steady run, 4 KiB echoed each (default 200, quick 50)
  --memory-connections=N  connections of the memory run (default 500, quick 200)
  --memory-stream-bytes=N bytes each of those connections carries (default 1048576)
  --rest-seconds=S        idle wait before the memory run's last RSS reading (default 12, quick 6)
  --fd-limit=N            the server's open-files limit in the fdlimit run (default 1024; 1.25× that dial)
  --multi-agents=N        swarm agents of the multi-server run, each connected to all 5 (default 1000, quick 200)
  --multi-visitors=N      visitors per server per round there (default 40, quick 10)
  --timeout=S             bound of every wait (default 60, quick 30)
  --no-sources            every connection from 127.0.0.1 (per-address limits then apply to the whole swarm)
  --seed=N                the swarm's jitter and the visitors' patterns (default 19)
  --server-env=K=V,...    extra variables for every server (e.g. TUNNEL_MAX_PENDING_HANDSHAKES=4096)
  --bin=PATH | --src=DIR  run the servers from a compiled binary or another checkout

The kit needs about connections + 1,000 descriptors in the server and the swarm: it raises its soft limit to the
hard one when it can (prlimit); otherwise run \`ulimit -n 65536\` first.
`;
