/** The benchmark's options (parsed from its command line by scripts/bench/main.ts) and its fixed parameters. */

/** One emulated WAN link of `--wan`: round-trip time and rate of each direction. */
export interface WanPoint {
  rttMs: number;
  mbit: number;
}

/** The links `--wan` measures when no set is given. */
export const DEFAULT_WAN: readonly WanPoint[] = [
  { rttMs: 20, mbit: 1000 },
  { rttMs: 50, mbit: 500 },
  { rttMs: 100, mbit: 300 },
  { rttMs: 200, mbit: 100 },
];

/** The WAN mode's settings (`--wan`). */
export interface WanOptions {
  points: WanPoint[];
  rounds: number;
  /** Measuring window of each transfer and of the loaded echo, ms. */
  measureMs: number;
  /** Warm-up before the window: at least this, ms … */
  warmMinMs: number;
  /** … and at least this many round trips. */
  warmRtts: number;
  /** Bottleneck queue of each direction in ms of link time; undefined: one BDP + 64 KiB. */
  queueMs: number | undefined;
}

/**
 * Parses the value of `--wan=`: points `RTT_MS/MBIT` separated by commas (`20/1000,100/300`), or the issue's
 * `RTT_MS,MBIT` for one point, several separated by `;` (`'20,1000;100,300'`). Throws on anything else.
 */
export function parseWanPoints(v: string): WanPoint[] {
  const pieces = v.includes("/") ? v.split(/[,;\s]+/) : v.split(/[;\s]+/);
  const points = pieces.filter(Boolean).map((p) => {
    const m = /^(\d+(?:\.\d+)?)[/,](\d+(?:\.\d+)?)$/.exec(p);
    if (!m || !(Number(m[2]) > 0)) throw new Error(`--wan: "${p}" is not RTT_MS/MBIT (e.g. 100/300)`);
    return { rttMs: Number(m[1]), mbit: Number(m[2]) };
  });
  if (points.length === 0) throw new Error("--wan: no link given");
  return points;
}

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
  /** `--wan`: measure through emulated WAN links instead of the loopback figures; null without it. */
  wan: WanOptions | null;
  help: boolean;
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

/** Parses `--flag` and `--name=value` arguments; unknown ones are ignored. Throws only on a bad `--wan=` value. */
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
    wan: flag("wan") || opt("wan") !== undefined ? wanOptions(opt, quick) : null,
    help: flag("help") || flag("h"),
  };
}

function wanOptions(opt: (name: string) => string | undefined, quick: boolean): WanOptions {
  const spec = opt("wan");
  const queue = opt("wan-queue-ms");
  return {
    points: spec ? parseWanPoints(spec) : DEFAULT_WAN.map((p) => ({ ...p })),
    rounds: Number(opt("rounds") ?? 1),
    measureMs: Number(opt("wan-seconds") ?? (quick ? 2 : 3)) * 1000,
    warmMinMs: quick ? 750 : 1500,
    warmRtts: quick ? 4 : 8,
    queueMs: queue === undefined ? undefined : Number(queue),
  };
}

/** `npm run bench -- --help`. */
export const USAGE = `npm run bench [-- OPTIONS]   Backchannel's benchmark (BENCHMARKS.md)

Loopback (the default): direct path, tunnel and TLS tunnel, interleaved.
  --quick              shorter runs (under a minute)
  --rounds=N           rounds (default 5, quick 2; with --wan 1)
  --json               JSON document on stdout, the tables on stderr (use npm run --silent)
  --tests=LIST         a subset: up1,down1,up8,down8,rr-paced,rr-closed,conn,sni,udp,ws (ws: one stream
                       over TLS, wss:// and wss:// through nginx when installed)
  --idle-streams=N     idle streams of the memory run (default 10000)
  --no-tls --no-extras --no-memory
  --bin=PATH           a compiled binary instead of the sources
  --src=DIR            run the pairs from DIR/src/main.ts
  --baseline=DIR       one more pair from DIR/src/main.ts (A/B)
  --tunnel-env=K=V,..  extra variables for the pairs
  --ceiling            reference paths through two plain relays (and socat)

WAN (issue 15): through an emulated link between agent and server (scripts/lib/wan-link.ts).
  --wan                the default set 20/1000,50/500,100/300,200/100 (RTT ms / Mbit/s each way)
  --wan=SET            e.g. --wan=100/300 or --wan=20/1000,200/100; also --wan=100,300 (one link)
                       or --wan='20,1000;100,300'
  --wan-seconds=S      measuring window per transfer (default 3, quick 2), after a warm-up of
                       max(1.5 s, 8 RTT) (quick: max(0.75 s, 4 RTT))
  --wan-queue-ms=MS    bottleneck queue per direction in ms at the link rate (default one BDP + 64 KiB)
  Paths: link only (plain TCP through the link), tunnel, tunnel TLS; 1 stream up and down, 4 streams down,
  1 KiB echoes (100/s) on a second stream while one stream downloads. --json, --quick, --no-tls, --bin,
  --src and --tunnel-env apply too.
`;
