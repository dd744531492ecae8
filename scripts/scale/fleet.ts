/**
 * The swarm as the scale kit's main process sees it: `procs` swarm processes (scripts/scale/swarm-worker.ts), the
 * agents dealt out among them, each agent with its own loopback source address; reports merged. Killing the fleet
 * (SIGKILL) drops every connection at once: the kernel closes them all, as when a site loses power.
 */
import type { Subprocess } from "bun";
import type { Children } from "../bench/processes.ts";
import type { SwarmPlan, SwarmReport } from "./swarm.ts";
import type { DnsTarget, ToWorker } from "./swarm-worker.ts";

/** What a fleet needs besides the counts. */
export interface FleetSpec {
  procs: number;
  agents: number;
  /** Prefix of the agents' host names (agent k is `${prefix}-${k}`). */
  prefix: string;
  /** Give agents their own loopback source addresses (else the system picks 127.0.0.1). */
  sources: boolean;
  dns: DnsTarget | null;
  plan: Omit<SwarmPlan, "agents">;
}

/**
 * The loopback source address of agent `k`: 127.1.0.1, 127.1.0.2, … (250 per /24, never .0 or .255), so each agent
 * looks like its own host to per-address limits. Linux routes all of 127/8 to `lo`; nothing needs configuring.
 */
export function sourceAddress(k: number): string {
  const last = (k % 250) + 1;
  const third = Math.floor(k / 250) % 256;
  const second = 1 + Math.floor(k / (250 * 256));
  return `127.${second}.${third}.${last}`;
}

/** Adds `b`'s counters to `a` (registration times merged and sorted). */
export function mergeReports(a: SwarmReport, b: SwarmReport): SwarmReport {
  const hist = a.refusalHistogram.map((v, i) => v + (b.refusalHistogram[i] ?? 0));
  return {
    slots: a.slots + b.slots,
    registered: a.registered + b.registered,
    registeredSinceMark: a.registeredSinceMark + b.registeredSinceMark,
    registrations: [...a.registrations, ...b.registrations].sort((x, y) => x - y),
    busy: a.busy + b.busy,
    bareCloses: a.bareCloses + b.bareCloses,
    connectErrors: a.connectErrors + b.connectErrors,
    timeouts: a.timeouts + b.timeouts,
    failures: a.failures + b.failures,
    lost: a.lost + b.lost,
    refusalHistogram: hist,
    carried: a.carried + b.carried,
    echoedBytes: a.echoedBytes + b.echoedBytes,
    streamsOpened: a.streamsOpened + b.streamsOpened,
    errors: [...a.errors, ...b.errors].slice(0, 5),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One swarm process and its request queue (replies come in request order). */
class Worker {
  private readonly waiting: ((m: Record<string, unknown>) => void)[] = [];
  readonly proc: Subprocess;
  error: string | null = null;
  private readyP: Promise<void>;

  constructor(kids: Children) {
    let ready!: () => void;
    this.readyP = new Promise<void>((r) => (ready = r));
    this.proc = Bun.spawn([process.execPath, new URL("./swarm-worker.ts", import.meta.url).pathname], {
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      serialization: "json",
      ipc: (raw: unknown) => {
        const m = raw as Record<string, unknown>;
        if (m.type === "ready") return ready();
        if (m.type === "error") this.error = String(m.message);
        this.waiting.shift()?.(m);
      },
    });
    kids.add(this.proc);
  }

  /** Sends a request; resolves with its reply (rejects if the process exits or 30 s pass). */
  async ask(m: ToWorker): Promise<Record<string, unknown>> {
    await this.readyP;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`swarm process did not answer ${m.type}`)), 30_000);
      this.waiting.push((reply) => {
        clearTimeout(t);
        if (reply.type === "error") reject(new Error(`swarm process: ${String(reply.message)}`));
        else resolve(reply);
      });
      this.proc.send(m);
    });
  }
}

/** A running fleet of swarm processes. */
export class Fleet {
  private constructor(
    private readonly workers: Worker[],
    private readonly kids: Children,
    /** The servers the swarm connects to (resolved by the swarm when `dns:`). */
    readonly servers: SwarmPlan["servers"],
    /** Epoch ms at which the first swarm process started dialling. */
    readonly startedAt: number,
  ) {}

  /** Starts the processes and makes every agent dial at once; resolves once all have their plan. */
  static async start(kids: Children, spec: FleetSpec): Promise<Fleet> {
    const n = Math.max(1, Math.min(spec.procs, spec.agents));
    const workers = Array.from({ length: n }, () => new Worker(kids));
    const replies = await Promise.all(
      workers.map((w, i) => {
        const agents: SwarmPlan["agents"] = [];
        for (let k = i; k < spec.agents; k += n) agents.push({ hostName: `${spec.prefix}-${k}`, source: spec.sources ? sourceAddress(k) : null });
        return w.ask({ type: "plan", plan: { ...spec.plan, seed: spec.plan.seed * 31 + i, agents, dns: spec.dns } });
      }),
    );
    const startedAt = Math.min(...replies.map((r) => r.startedAt as number));
    return new Fleet(workers, kids, (replies[0]?.servers as SwarmPlan["servers"]) ?? spec.plan.servers, startedAt);
  }

  get pids(): number[] {
    return this.workers.map((w) => w.proc.pid);
  }

  /** Starts a measuring period in every process. */
  async mark(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.ask({ type: "mark" })));
  }

  /** The merged report (`full`: with every registration time). */
  async report(full = false): Promise<SwarmReport> {
    const rs = await Promise.all(this.workers.map((w) => w.ask({ type: "report", full })));
    return rs.map((r) => r.report as SwarmReport).reduce(mergeReports);
  }

  /** Polls until `pred` holds or `timeoutMs` pass; resolves with the last report and whether it held. */
  async waitFor(pred: (r: SwarmReport) => boolean, timeoutMs: number, pollMs = 100): Promise<{ report: SwarmReport; ok: boolean }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const report = await this.report();
      if (pred(report)) return { report, ok: true };
      if (performance.now() > deadline) return { report, ok: false };
      await sleep(pollMs);
    }
  }

  /** SIGKILLs every swarm process: all connections drop at once. */
  async kill(): Promise<void> {
    for (const w of this.workers) w.proc.kill("SIGKILL");
    await Promise.all(this.workers.map((w) => w.proc.exited));
    for (const w of this.workers) this.kids.delete(w.proc);
  }

  /** Closes every connection (FIN) and ends the processes. */
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.ask({ type: "stop" }).catch(() => {})));
    await Promise.race([Promise.all(this.workers.map((w) => w.proc.exited)), sleep(3_000)]);
    await this.kill();
  }
}
