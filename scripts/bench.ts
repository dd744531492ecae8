/**
 * `npm run bench [-- --quick] [-- --json]`: Backchannel's end-to-end benchmark on loopback. See BENCHMARKS.md.
 *
 * It starts everything it measures: a target process (sink, source, echo and HTTP services, scripts/lib/
 * bench-target.ts), a plaintext server + agent pair and, when `openssl` exists, a TLS pair (each role its own
 * process, TUNNEL_LOG_LEVEL=warn, TUNNEL_ACCESS_LOG=off). The load generators (scripts/lib/bench-load.ts) run in
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
 * reference path through two minimal relays, scripts/lib/bench-relay.ts: what two Bun processes in the path
 * can reach here without any tunnel logic; with socat installed also through two chains of socat relays, the same
 * hops in C),
 * --tunnel-env=K=V,K=V (extra variables for the plaintext and TLS pairs, not the baseline: A/B of a setting).
 * Nothing here asserts a figure: the targets section only reports met / not met.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Subprocess } from "bun";
import { sourceCommand, spawnRole, type RoleProcess } from "./lib/roles.ts";
import { connRate, download, echoLatency, holdIdle, upload, type Throughput } from "./bench/load.ts";
import { iperfExtra, sshMissing, startSocatRelays, startSshTunnel, wrkExtra, type Extra, type Tracker } from "./bench/extras.ts";

// --- options ---

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const QUICK = flag("quick");
const JSON_OUT = flag("json");
const ROUNDS = Number(opt("rounds") ?? (QUICK ? 2 : 5));
const IDLE_STREAMS = Number(opt("idle-streams") ?? 10_000);
const BIN = opt("bin");
const EXTRAS = !flag("no-extras");
const WANT_TLS = !flag("no-tls");
const MEMORY = !flag("no-memory");
const ONLY = opt("tests")?.split(",");
const BASELINE = opt("baseline");
const SRC = opt("src");
const CEILING = flag("ceiling");
const TUNNEL_ENV: Record<string, string> = Object.fromEntries(
  (opt("tunnel-env") ?? "").split(",").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const THROUGHPUT_MS = QUICK ? 500 : 1500;
const RR_MS = QUICK ? 600 : 2000;
const CONN_MS = QUICK ? 500 : 1500;
const PACED_RATE = 1000;
const CONN_WORKERS = 16;
const PARALLEL = 8;
const MiB = 1024 * 1024;
const SSH = "ssh -R";

const out = (s = "") => (JSON_OUT ? process.stderr : process.stdout).write(`${s}\n`);
const progress = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- cleanup of everything started ---

const children = new Set<Subprocess>();
const roles = new Set<RoleProcess>();
const tmpDirs: string[] = [];
const track: Tracker = { add: (p) => children.add(p), delete: (p) => children.delete(p), tmpDir: (d) => tmpDirs.push(d) };
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...roles].map((r) => r.stop(2_000).catch(() => {})));
    for (const c of children) {
      if (c.exitCode === null) c.kill("SIGTERM");
    }
    await Promise.race([Promise.all([...children].map((c) => c.exited)), sleep(2_000)]);
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    progress(`\n${sig}: stopping everything the benchmark started`);
    void cleanup().then(() => process.exit(130));
  });
}
process.on("exit", () => {
  for (const r of roles) if (r.proc.exitCode === null) r.proc.kill("SIGKILL");
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

// --- /proc ---

/** VmRSS of a process in KiB (0 if it is gone). */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = 100;
/** utime + stime of a process in seconds. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Samples the peak RSS of some processes while a run is going on. */
function sampleRss(pids: number[]): () => number[] {
  const peak = pids.map(rssKiB);
  const t = setInterval(() => {
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i] as number, rssKiB(p))));
  }, 50);
  return () => {
    clearInterval(t);
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i] as number, rssKiB(p))));
    return peak;
  };
}

// --- the target process ---

interface Ports {
  sink: number;
  source: number;
  echo: number;
  http: number;
  iperf?: number;
}
type Service = keyof Ports;

interface Target {
  ports: Ports;
  pid: number;
  active(): Promise<number>;
}

async function startTarget(): Promise<Target> {
  let onPorts!: (p: Ports) => void;
  const portsP = new Promise<Ports>((r) => (onPorts = r));
  const waiting: ((n: number) => void)[] = [];
  const proc = Bun.spawn([process.execPath, new URL("./bench/target.ts", import.meta.url).pathname], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(m: { type: string; ports?: Ports; active?: number }) {
      if (m.type === "ports" && m.ports) onPorts(m.ports);
      else if (m.type === "stats") waiting.shift()?.(m.active ?? 0);
    },
  });
  children.add(proc);
  const ports = await Promise.race([
    portsP,
    sleep(10_000).then(() => {
      throw new Error("the target process did not start");
    }),
  ]);
  return {
    ports,
    pid: proc.pid,
    active: () =>
      new Promise<number>((r) => {
        waiting.push(r);
        proc.send({ type: "stats" });
      }),
  };
}

/** Waits until the target has no open sockets (the previous run is fully torn down). */
async function quiesce(target: Target, allowed = 0): Promise<void> {
  const deadline = performance.now() + 10_000;
  while ((await target.active()) > allowed) {
    if (performance.now() > deadline) throw new Error("target still has open connections after 10 s");
    await sleep(10);
  }
}

// --- tunnel pairs ---

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A throwaway CA and a server certificate for localhost / 127.0.0.1, made with the openssl CLI. */
function makeCerts(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), "backchannel-bench-"));
  tmpDirs.push(dir);
  const run = (args: string[]) => {
    const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString().trim().split("\n")[0]}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run(["req", "-x509", ...ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
  run(["req", ...ec, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost"]);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
    "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
  return { cert: join(dir, "server.pem"), key: join(dir, "server-key.pem"), ca: join(dir, "ca.pem") };
}

/** The two processes between visitor and target (server and agent, or the two reference relays). */
interface Procs {
  /** [server, agent] (or [first relay, second relay]). */
  pids: [number, number];
  /** VmRSS when idle, KiB. */
  idleKiB: [number, number];
}

interface Pair extends Procs {
  name: string;
  server: RoleProcess;
  agent: RoleProcess;
  routes: Ports;
}

const cmd = (mode: "server" | "agent") =>
  BIN ? [BIN, `--mode=${mode}`] : SRC ? [process.execPath, join(SRC, "src/main.ts"), `--mode=${mode}`] : sourceCommand(mode);
const baselineCmd = (mode: "server" | "agent") => [process.execPath, join(BASELINE ?? ".", "src/main.ts"), `--mode=${mode}`];

/** One 1-byte echo through a port; false if the connection closed without it. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let ok = false;
    const t = setTimeout(() => resolve(false), 2_000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write("p"),
        data(s) {
          ok = true;
          s.end();
        },
        close() {
          clearTimeout(t);
          resolve(ok);
        },
        connectError() {
          clearTimeout(t);
          resolve(false);
        },
      },
    }).catch(() => resolve(false));
  });
}

async function startPair(name: string, target: Target, tls: TlsFiles | null, command = cmd, extraEnv = TUNNEL_ENV): Promise<Pair> {
  const secret = randomBytes(18).toString("base64url");
  const services = Object.keys(target.ports) as Service[];
  const routes = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const agentPort = freePort();
  const common = {
    TUNNEL_LOG_LEVEL: "warn",
    TUNNEL_MAX_STREAMS_PER_CONNECTION: String(2 * IDLE_STREAMS),
    TUNNEL_TLS: tls ? "on" : "off",
    ...extraEnv,
  };
  const server = spawnRole(command("server"), {
    ...common,
    ...(tls ? { TUNNEL_TLS_CERT: tls.cert, TUNNEL_TLS_KEY: tls.key } : {}),
    TUNNEL_ACCESS_LOG: "off",
    TUNNEL_LISTEN: `127.0.0.1:${agentPort}`,
    TUNNEL_CLUSTERS: `bench=token:${secret}`,
    TUNNEL_ROUTES: services.map((s) => `127.0.0.1:${routes[s]}=bench/${s}`).join(","),
  });
  roles.add(server);
  const agent = spawnRole(command("agent"), {
    ...common,
    ...(tls ? { TUNNEL_TLS_CA: tls.ca, TUNNEL_TLS_SERVER_NAME: "localhost" } : {}),
    TUNNEL_SERVERS: `127.0.0.1:${agentPort}`,
    TUNNEL_CLUSTER: "bench",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_HOSTNAME: `bench-${name.replaceAll(" ", "-")}`,
    TUNNEL_SERVICES: services.map((s) => `${s}=127.0.0.1:${target.ports[s]}`).join(","),
  });
  roles.add(agent);
  // Ready when several echoes in a row make it through (both data connections are up by then).
  const deadline = performance.now() + 15_000;
  let streak = 0;
  while (streak < 8) {
    if (server.proc.exitCode !== null || agent.proc.exitCode !== null || performance.now() > deadline) {
      const last = [...server.lines, ...agent.lines].filter((l) => l.level !== "info").slice(-3);
      throw new Error(`${name} tunnel not ready: ${last.map((l) => `${l.msg ?? ""} ${l.reason ?? l.error ?? ""}`.trim()).join("; ") || "no echo through the route"}`);
    }
    streak = (await probe(routes.echo)) ? streak + 1 : 0;
    if (streak === 0) await sleep(50);
  }
  await quiesce(target);
  await sleep(300);
  return { name, server, agent, routes, pids: [server.proc.pid, agent.proc.pid], idleKiB: [rssKiB(server.proc.pid), rssKiB(agent.proc.pid)] };
}

/**
 * The reference path (--ceiling): two minimal relays (scripts/lib/bench-relay.ts) chained in front of the target,
 * one process each, like server and agent but without framing, multiplexing or flow control.
 */
async function startRelays(target: Target): Promise<{ ports: Ports; procs: Procs }> {
  const services = Object.keys(target.ports) as Service[];
  const first = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const second = Object.fromEntries(services.map((s) => [s, freePort()])) as unknown as Ports;
  const relay = async (from: Ports, to: Ports) => {
    const args = services.map((s) => `${from[s]}:${to[s]}`);
    const p = Bun.spawn([process.execPath, new URL("./bench/relay.ts", import.meta.url).pathname, ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
    });
    children.add(p);
    const reader = p.stdout.getReader();
    const { value } = await reader.read();
    if (!new TextDecoder().decode(value).includes("ready")) throw new Error("relay did not start");
    reader.releaseLock();
    return p.pid;
  };
  // The visitor connects to the first relay, which forwards to the second, which forwards to the target.
  const b = await relay(second, target.ports);
  const a = await relay(first, second);
  await sleep(300);
  return { ports: first, procs: { pids: [a, b], idleKiB: [rssKiB(a), rssKiB(b)] } };
}

async function stopPair(p: Pair): Promise<void> {
  await Promise.all([p.server.stop(3_000), p.agent.stop(3_000)]);
  roles.delete(p.server);
  roles.delete(p.agent);
}

// --- figures ---

/** figure → path → one value per round. */
const results = new Map<string, Map<string, number[]>>();
const peakKiB = new Map<string, [number, number]>();
const errors: string[] = [];

function record(figure: string, path: string, value: number): void {
  let byPath = results.get(figure);
  if (!byPath) results.set(figure, (byPath = new Map()));
  let vals = byPath.get(path);
  if (!vals) byPath.set(path, (vals = []));
  vals.push(value);
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function med(figure: string, path: string): number {
  return median(results.get(figure)?.get(path) ?? []);
}

interface PathDef {
  name: string;
  ports: Ports;
  pair: Procs | null;
}

interface TestDef {
  id: string;
  run(path: PathDef): Promise<void>;
}

function throughputTest(id: string, label: string, dir: "up" | "down", streams: number): TestDef {
  return {
    id,
    async run(path) {
      const pids = path.pair ? path.pair.pids : [];
      const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const stop = sampleRss(pids);
      let r: Throughput;
      try {
        r = dir === "up"
          ? await upload(path.ports.sink, streams, THROUGHPUT_MS)
          : await download(path.ports.source, streams, THROUGHPUT_MS);
      } finally {
        const peak = stop();
        if (path.pair) {
          const old = peakKiB.get(path.name) ?? [0, 0];
          peakKiB.set(path.name, [Math.max(old[0], peak[0] ?? 0), Math.max(old[1], peak[1] ?? 0)]);
          const idle = path.pair.idleKiB;
          record(`RSS peak above idle (MiB), ${label}: server`, path.name, ((peak[0] ?? 0) - idle[0]) / 1024);
          record(`RSS peak above idle (MiB), ${label}: agent`, path.name, ((peak[1] ?? 0) - idle[1]) / 1024);
        }
      }
      record(`${label} (MB/s)`, path.name, r.bytesPerSec / 1e6);
      if (path.pair) {
        const cpu = pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0;
        record(`CPU s per GiB, ${label} (server+agent)`, path.name, cpu / (r.bytesTotal / (1024 * MiB)));
      }
    },
  };
}

const TESTS: TestDef[] = [
  throughputTest("up1", "upload, 1 stream", "up", 1),
  throughputTest("down1", "download, 1 stream", "down", 1),
  throughputTest("up8", `upload, ${PARALLEL} streams`, "up", PARALLEL),
  throughputTest("down8", `download, ${PARALLEL} streams`, "down", PARALLEL),
  {
    id: "rr-paced",
    async run(path) {
      const r = await echoLatency(path.ports.echo, PACED_RATE, RR_MS);
      record(`echo 1 KiB at ${PACED_RATE}/s: p50 (µs)`, path.name, r.p50);
      record(`echo 1 KiB at ${PACED_RATE}/s: p99 (µs)`, path.name, r.p99);
      record(`echo 1 KiB at ${PACED_RATE}/s: p99.9 (µs)`, path.name, r.p999);
    },
  },
  {
    id: "rr-closed",
    async run(path) {
      const r = await echoLatency(path.ports.echo, 0, RR_MS);
      record("echo 1 KiB closed loop: p50 (µs)", path.name, r.p50);
      record("echo 1 KiB closed loop: p99 (µs)", path.name, r.p99);
      record("echo 1 KiB closed loop: req/s", path.name, r.reqPerSec);
    },
  },
  {
    id: "conn",
    async run(path) {
      const r = await connRate(path.ports.echo, CONN_WORKERS, CONN_MS);
      record(`new connections/s (${CONN_WORKERS} workers)`, path.name, r.perSec);
      if (r.failed > 0) errors.push(`${path.name}: ${r.failed} of ${r.completed + r.failed} new connections failed`);
    },
  },
];

// --- formatting ---

function fmt(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function cell(vals: number[] | undefined): string {
  if (!vals || vals.length === 0) return "–";
  return `${fmt(median(vals))} (${fmt(Math.min(...vals))}–${fmt(Math.max(...vals))})`;
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

// --- main ---

interface Summary {
  machine: Record<string, unknown>;
  mode: string;
  rounds: number;
  paths: string[];
  figures: Record<string, Record<string, number[]>>;
  memory: Record<string, unknown>;
  extras: Record<string, unknown>;
  targets: { target: string; value: string; met: boolean | null }[];
  notes: string[];
}

async function main(): Promise<Summary> {
  const started = performance.now();
  const notes: string[] = [];
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    bun: Bun.version,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    loadavg: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    command: `bun scripts/bench.ts ${argv.join(" ")}`.trim(),
    runs: BIN ? `compiled binary ${BIN}` : "from source",
  };
  out(`Backchannel benchmark (${QUICK ? "quick" : "full"}): ${machine.cpus} × ${machine.cpu}, Bun ${machine.bun}, Linux ${machine.kernel}, load ${machine.loadavg}`);

  const target = await startTarget();
  const iperf3 = EXTRAS ? Bun.which("iperf3") : null;
  let iperfServer: Subprocess | null = null;
  if (iperf3) {
    const port = freePort();
    iperfServer = Bun.spawn([iperf3, "-s", "-p", String(port)], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    children.add(iperfServer);
    target.ports.iperf = port;
  }

  const plain = await startPair("tunnel", target, null);
  const base = BASELINE ? await startPair("baseline", target, null, baselineCmd, {}) : null;
  let tlsPair: Pair | null = null;
  let tlsReason = "";
  if (!WANT_TLS) tlsReason = "--no-tls";
  else if (!Bun.which("openssl")) tlsReason = "openssl not installed (needed to make a throwaway certificate)";
  else {
    try {
      tlsPair = await startPair("tunnel TLS", target, makeCerts());
    } catch (e) {
      tlsReason = (e as Error).message;
    }
  }
  if (tlsReason) notes.push(`TLS rows not available: ${tlsReason}`);

  const paths: PathDef[] = [
    { name: "direct", ports: target.ports, pair: null },
    { name: plain.name, ports: plain.routes, pair: plain },
    ...(tlsPair ? [{ name: tlsPair.name, ports: tlsPair.routes, pair: tlsPair }] : []),
    ...(base ? [{ name: base.name, ports: base.routes, pair: base }] : []),
  ];
  if (CEILING) {
    const relays = await startRelays(target);
    paths.push({ name: "2 plain relays", ports: relays.ports, pair: relays.procs });
    try {
      const { iperf: _, ...services } = target.ports;
      paths.push({ name: "2 socat relays", ports: (await startSocatRelays(track, services, freePort)) as Ports, pair: null });
    } catch (e) {
      notes.push(`socat reference path not available: ${(e as Error).message}`);
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    for (const test of TESTS.filter((t) => !ONLY || ONLY.includes(t.id))) {
      for (let i = 0; i < paths.length; i++) {
        const path = paths[(i + round) % paths.length] as PathDef;
        await quiesce(target);
        try {
          await test.run(path);
        } catch (e) {
          errors.push(`round ${round + 1} ${test.id} ${path.name}: ${(e as Error).message}`);
        }
      }
    }
    progress(`round ${round + 1}/${ROUNDS} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  // Extras, interleaved direct / tunnel like the rest.
  const extras: Record<string, Record<string, Record<string, number[]>>> = {};
  const extraNotes: string[] = [];
  const extraPaths: [string, Partial<Ports>][] = [["direct", target.ports], [plain.name, plain.routes]];
  if (tlsPair) extraPaths.push([tlsPair.name, tlsPair.routes]);
  if (!EXTRAS) extraNotes.push("extra comparisons skipped (--no-extras)");
  else {
    const list: [Extra, Service][] = [];
    const secs = QUICK ? 1 : 2;
    if (iperf3 && target.ports.iperf) {
      list.push([iperfExtra(track, "1 stream", [], secs), "iperf"], [iperfExtra(track, "1 stream -R", ["-R"], secs), "iperf"]);
      list.push([iperfExtra(track, `-P ${PARALLEL}`, ["-P", String(PARALLEL)], secs), "iperf"]);
    } else extraNotes.push("iperf3: skipped, not installed (apt-get install iperf3)");
    if (Bun.which("wrk")) list.push([wrkExtra(track, secs), "http"]);
    else extraNotes.push("wrk: skipped, not installed (apt-get install wrk)");
    const sshWhy = sshMissing();
    if (sshWhy) extraNotes.push(sshWhy);
    else {
      try {
        const forward: Record<string, number> = { http: target.ports.http };
        if (target.ports.iperf) forward.iperf = target.ports.iperf;
        const fwd = await startSshTunnel(track, forward, freePort);
        extraPaths.push([SSH, fwd as Partial<Ports>]);
        extraNotes.push("ssh -R: a throwaway OpenSSH sshd on loopback and one `ssh -N -R` client, default cipher and settings");
      } catch (e) {
        extraNotes.push(`ssh -R: skipped, ${(e as Error).message}`);
      }
    }
    const extraRounds = QUICK ? 1 : 2;
    for (let round = 0; round < extraRounds; round++) {
      for (const [extra, service] of list) {
        for (let i = 0; i < extraPaths.length; i++) {
          const [pname, ports] = extraPaths[(i + round) % extraPaths.length] as [string, Partial<Ports>];
          const port = ports[service];
          if (port === undefined) continue;
          try {
            const r = await extra.run(port);
            const e = (extras[extra.name] ??= {});
            for (const [k, v] of Object.entries(r)) ((e[k] ??= {})[pname] ??= []).push(v);
          } catch (err) {
            errors.push(`${extra.name} ${pname}: ${(err as Error).message}`);
          }
          await quiesce(target);
        }
      }
    }
  }

  // Memory with idle streams, on a fresh pair so earlier runs do not colour it.
  const memory: Record<string, unknown> = {};
  let perStreamKiB = NaN;
  if (MEMORY) {
    const pair = await startPair("memory", target, null, cmd, {});
    const [s0, a0] = pair.idleKiB;
    let hold: Awaited<ReturnType<typeof holdIdle>> | null = null;
    try {
      const t0 = performance.now();
      hold = await holdIdle(pair.routes.echo, IDLE_STREAMS);
      const openMs = performance.now() - t0;
      await sleep(1_000);
      const s1 = rssKiB(pair.server.proc.pid);
      const a1 = rssKiB(pair.agent.proc.pid);
      perStreamKiB = (s1 - s0 + (a1 - a0)) / hold.count;
      await hold.close();
      hold = null;
      await quiesce(target);
      await sleep(500);
      const s2 = rssKiB(pair.server.proc.pid);
      const a2 = rssKiB(pair.agent.proc.pid);
      Object.assign(memory, {
        idleStreams: IDLE_STREAMS,
        openSeconds: openMs / 1000,
        idleKiB: { server: s0, agent: a0 },
        withStreamsKiB: { server: s1, agent: a1 },
        afterCloseKiB: { server: s2, agent: a2 },
        perStreamKiB: { server: (s1 - s0) / IDLE_STREAMS, agent: (a1 - a0) / IDLE_STREAMS, total: perStreamKiB },
      });
    } catch (e) {
      errors.push(`idle streams: ${(e as Error).message}`);
      await hold?.close().catch(() => {});
    }
    await stopPair(pair);
  }

  // --- report ---
  const pathNames = paths.map((p) => p.name);
  out(`\n## Figures: ${ROUNDS} rounds, paths interleaved (order rotated each round); median (min–max), ratio = tunnel/direct medians\n`);
  const header = ["figure", ...pathNames.flatMap((p, i) => (i === 0 ? [p] : [p, "ratio"]))];
  const rows: string[][] = [];
  for (const [figure, byPath] of results) {
    const d = median(byPath.get("direct") ?? []);
    rows.push([
      figure,
      ...pathNames.flatMap((p, i) => {
        const vals = byPath.get(p);
        if (i === 0) return [cell(vals)];
        const r = median(vals ?? []) / d;
        return [cell(vals), Number.isFinite(r) ? `${r.toFixed(2)}×` : "–"];
      }),
    ]);
  }
  out(table(header, rows));
  if (tlsReason) out(`\nTLS: not available (${tlsReason})`);

  out("\n## Memory (VmRSS, MiB)\n");
  const memRows: string[][] = [];
  for (const p of paths) {
    if (!p.pair) continue;
    const idle = p.pair.idleKiB;
    const peak = peakKiB.get(p.name) ?? [NaN, NaN];
    memRows.push([`${p.name}: idle`, fmt(idle[0] / 1024), fmt(idle[1] / 1024)]);
    memRows.push([`${p.name}: peak during throughput runs (above idle)`, `${fmt(peak[0] / 1024)} (+${fmt((peak[0] - idle[0]) / 1024)})`, `${fmt(peak[1] / 1024)} (+${fmt((peak[1] - idle[1]) / 1024)})`]);
  }
  const m = memory as { idleKiB?: { server: number; agent: number }; withStreamsKiB?: { server: number; agent: number }; afterCloseKiB?: { server: number; agent: number }; perStreamKiB?: { server: number; agent: number; total: number }; openSeconds?: number };
  if (m.idleKiB && m.withStreamsKiB && m.afterCloseKiB && m.perStreamKiB) {
    memRows.push(["fresh pair: idle", fmt(m.idleKiB.server / 1024), fmt(m.idleKiB.agent / 1024)]);
    memRows.push([`fresh pair: ${IDLE_STREAMS.toLocaleString("en-US")} idle streams open`, fmt(m.withStreamsKiB.server / 1024), fmt(m.withStreamsKiB.agent / 1024)]);
    memRows.push(["fresh pair: after they closed", fmt(m.afterCloseKiB.server / 1024), fmt(m.afterCloseKiB.agent / 1024)]);
    memRows.push(["KiB per idle stream", fmt(m.perStreamKiB.server), fmt(m.perStreamKiB.agent)]);
  }
  out(table(["", "server", "agent"], memRows));
  if (m.perStreamKiB) out(`\n${IDLE_STREAMS.toLocaleString("en-US")} idle streams opened in ${fmt(m.openSeconds ?? NaN)} s; ${fmt(m.perStreamKiB.total)} KiB per stream, server + agent.`);

  const extraOut: Record<string, unknown> = {};
  if (Object.keys(extras).length > 0 || extraNotes.length > 0) {
    out("\n## Extra comparisons (median (min–max))\n");
    const xrows: string[][] = [];
    const others = extraPaths.slice(1).map(([n]) => n);
    for (const [name, metrics] of Object.entries(extras)) {
      for (const [metric, byPath] of Object.entries(metrics)) {
        const d = median(byPath.direct ?? []);
        xrows.push([
          `${name}: ${metric}`,
          cell(byPath.direct),
          ...others.flatMap((o) => {
            const r = median(byPath[o] ?? []) / d;
            return [cell(byPath[o]), Number.isFinite(r) ? `${r.toFixed(2)}×` : "–"];
          }),
        ]);
      }
    }
    if (xrows.length > 0) out(table(["figure", "direct", ...others.flatMap((o) => [o, "ratio"])], xrows));
    for (const n of extraNotes) out(`- ${n}`);
    Object.assign(extraOut, extras, { notes: extraNotes });
  }

  // --- targets ---
  const T = plain.name;
  const X = tlsPair?.name ?? "";
  const ratio = (f: string, p: string) => med(f, p) / med(f, "direct");
  const targets: Summary["targets"] = [];
  const check = (name: string, value: number, ok: (v: number) => boolean, show: (v: number) => string) =>
    targets.push({ target: name, value: Number.isFinite(value) ? show(value) : "not measured", met: Number.isFinite(value) ? ok(value) : null });
  const x = (v: number) => `${v.toFixed(2)}×`;
  check("single stream upload ≥ 0.40× direct (plaintext)", ratio("upload, 1 stream (MB/s)", T), (v) => v >= 0.4, x);
  check("single stream download ≥ 0.40× direct (plaintext)", ratio("download, 1 stream (MB/s)", T), (v) => v >= 0.4, x);
  if (tlsPair) {
    check("single stream upload ≥ 0.25× direct (TLS)", ratio("upload, 1 stream (MB/s)", X), (v) => v >= 0.25, x);
    check("single stream download ≥ 0.25× direct (TLS)", ratio("download, 1 stream (MB/s)", X), (v) => v >= 0.25, x);
  } else {
    targets.push({ target: "single stream each way ≥ 0.25× direct (TLS)", value: `not available: ${tlsReason}`, met: null });
  }
  check(`${PARALLEL} streams upload ≥ 0.40× direct`, ratio(`upload, ${PARALLEL} streams (MB/s)`, T), (v) => v >= 0.4, x);
  check(`${PARALLEL} streams download ≥ 0.40× direct`, ratio(`download, ${PARALLEL} streams (MB/s)`, T), (v) => v >= 0.4, x);
  // The same targets with iperf3 at both ends, the way the issue measured rathole and bore (anchors.md).
  const xr = (name: string, p: string) => {
    const m = extras[`iperf3 ${name}`]?.["Gbit/s"];
    return m ? median(m[p] ?? []) / median(m.direct ?? []) : NaN;
  };
  if (extras["iperf3 1 stream"]) {
    check("iperf3 1 stream ≥ 0.40× direct (plaintext)", xr("1 stream", T), (v) => v >= 0.4, x);
    check("iperf3 1 stream -R ≥ 0.40× direct (plaintext)", xr("1 stream -R", T), (v) => v >= 0.4, x);
    if (tlsPair) {
      check("iperf3 1 stream ≥ 0.25× direct (TLS)", xr("1 stream", X), (v) => v >= 0.25, x);
      check("iperf3 1 stream -R ≥ 0.25× direct (TLS)", xr("1 stream -R", X), (v) => v >= 0.25, x);
    }
    check(`iperf3 -P ${PARALLEL} ≥ 0.40× direct`, xr(`-P ${PARALLEL}`, T), (v) => v >= 0.4, x);
  }
  const p50f = `echo 1 KiB at ${PACED_RATE}/s: p50 (µs)`;
  const p99f = `echo 1 KiB at ${PACED_RATE}/s: p99 (µs)`;
  check(`round trip p50 at ${PACED_RATE}/s adds ≤ 100 µs over direct`, med(p50f, T) - med(p50f, "direct"), (v) => v <= 100, (v) => `+${Math.round(v)} µs`);
  check(`round trip p99 at ${PACED_RATE}/s ≤ 3× the tunnel's p50`, med(p99f, T) / med(p50f, T), (v) => v <= 3, x);
  check("≥ 5,000 new visitor connections/s through one agent", med(`new connections/s (${CONN_WORKERS} workers)`, T), (v) => v >= 5000, (v) => `${Math.round(v).toLocaleString("en-US")}/s`);
  check(`idle streams ≤ 10 KiB each, server + agent`, perStreamKiB, (v) => v <= 10, (v) => `${v.toFixed(2)} KiB`);
  const pk = peakKiB.get(T);
  const growth = pk ? Math.max(pk[0] - plain.idleKiB[0], pk[1] - plain.idleKiB[1]) / 1024 : NaN;
  check("memory during throughput runs < 64 MiB above idle, each process", growth, (v) => v < 64, (v) => `+${v.toFixed(1)} MiB (larger of the two)`);

  out("\n## Targets\n");
  out(table(["target", "measured", "met"], targets.map((t) => [t.target, t.value, t.met === null ? "n/a" : t.met ? "yes" : "**no**"])));
  if (errors.length > 0) {
    out("\n## Errors\n");
    for (const e of errors) out(`- ${e}`);
  }
  for (const n of notes) out(`\nNote: ${n}`);
  out(`\nTotal time ${((performance.now() - started) / 1000).toFixed(0)} s.`);

  const figures: Summary["figures"] = {};
  for (const [f, byPath] of results) figures[f] = Object.fromEntries(byPath);
  return {
    machine,
    mode: QUICK ? "quick" : "full",
    rounds: ROUNDS,
    paths: pathNames,
    figures,
    memory: { ...memory, pairs: Object.fromEntries(paths.filter((p) => p.pair).map((p) => [p.name, { idleKiB: p.pair?.idleKiB, peakKiB: peakKiB.get(p.name) }])) },
    extras: extraOut,
    targets,
    notes: [...notes, ...errors],
  };
}

let code = 0;
try {
  const summary = await main();
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
} catch (e) {
  progress(`benchmark failed: ${(e as Error).stack ?? String(e)}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
