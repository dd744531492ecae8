/** The benchmark's options (parsed from its command line by scripts/bench/main.ts) and its fixed parameters. */

/** Everything `npm run bench -- …` can set, plus the durations that --quick shortens. */
export interface BenchOptions {
  /** The arguments as given (reported with the machine). */
  argv: readonly string[];
  quick: boolean;
  /** A JSON document on stdout, the tables on stderr. */
  json: boolean;
  rounds: number;
  idleStreams: number;
  /** A compiled binary instead of the sources. */
  bin: string | undefined;
  extras: boolean;
  wantTls: boolean;
  memory: boolean;
  /** Only these test ids (for iterating). */
  only: string[] | undefined;
  /** Another checkout whose src/main.ts runs one more plaintext pair (A/B of a change). */
  baseline: string | undefined;
  /** Run the plaintext and TLS pairs from this checkout's src/main.ts instead. */
  src: string | undefined;
  ceiling: boolean;
  /** Extra variables for the plaintext and TLS pairs (not the baseline). */
  tunnelEnv: Record<string, string>;
  throughputMs: number;
  rrMs: number;
  connMs: number;
}

/** Paced echo rate of the rr-paced test, requests per second. */
export const PACED_RATE = 1000;
/** Concurrent workers of the conn test. */
export const CONN_WORKERS = 16;
/** Streams of the parallel throughput tests and of iperf3 -P. */
export const PARALLEL = 8;
export const MiB = 1024 * 1024;
/** The name of the ssh path in the extra comparisons. */
export const SSH = "ssh -R";

/** Parses `--flag` and `--name=value` arguments; unknown ones are ignored. Never throws. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const flag = (name: string) => argv.includes(`--${name}`);
  const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = flag("quick");
  return {
    argv,
    quick,
    json: flag("json"),
    rounds: Number(opt("rounds") ?? (quick ? 2 : 5)),
    idleStreams: Number(opt("idle-streams") ?? 10_000),
    bin: opt("bin"),
    extras: !flag("no-extras"),
    wantTls: !flag("no-tls"),
    memory: !flag("no-memory"),
    only: opt("tests")?.split(","),
    baseline: opt("baseline"),
    src: opt("src"),
    ceiling: flag("ceiling"),
    tunnelEnv: Object.fromEntries(
      (opt("tunnel-env") ?? "").split(",").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    ),
    throughputMs: quick ? 500 : 1500,
    rrMs: quick ? 600 : 2000,
    connMs: quick ? 500 : 1500,
  };
}
