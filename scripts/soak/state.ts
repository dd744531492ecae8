/**
 * The state of one soak run, in one object that scripts/soak/main.ts creates and passes to every part: the
 * processes, servers and proxies, the faults injected, the streams in flight with their totals, and the checkpoints.
 */
import type { Socket } from "bun";
import { Prng } from "../../test/support/protocol-prng.ts";
import type { PatternSource, PatternVerifier } from "../../test/support/pattern.ts";
import type { ProcSample } from "../lib/proc.ts";
import { AccessBook } from "./access.ts";
import type { AgentStop, Outage, StreamOutcome } from "./classify.ts";
import { Journal, LogFiles } from "./journal.ts";
import { limitsFor, type Limits, type Options } from "./options.ts";
import { ProcTable, type Proc } from "./procs.ts";
import { newUdpTotals, type UdpTotals } from "./udp.ts";
import type { SoakProxy } from "./proxy.ts";

/** One server: its ports (kept across restarts) and its outages. */
export interface ServerSlot {
  index: number;
  agentPort: number;
  routePort: number;
  /** The port of its /udp route (kept across restarts too). */
  udpPort: number;
  proc: Proc | null;
  outages: Outage[];
}

/** The soak target process. */
export interface TargetHandle {
  port: number;
  /** Open sockets, as of its last progress report. */
  active: number;
  proc: Proc;
  /** Asks the target to run a full GC (before it is sampled at a checkpoint); resolves when done or after 2 s. */
  gc(): Promise<void>;
}

/** The faults the soak injects, in a shuffled bag so that each kind comes up as often as the others. */
export const FAULT_KINDS = ["cut", "blackhole", "blackhole-oneway", "latency", "stall", "server-restart", "agent-restart"] as const;
/** One kind of fault. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One injected fault, for the report. */
export interface FaultRecord {
  kind: string;
  at: number;
  what: string;
  /** When a temporary fault (latency, stall) ends; 0 for the others. */
  until: number;
}

/** The faults so far. */
export interface FaultState {
  readonly log: FaultRecord[];
  readonly counts: Map<string, number>;
  /** Agent drains: SIGTERM, exit. */
  readonly agentStops: AgentStop[];
  /** The server or agent restart in progress (one at a time). */
  processFault: Promise<void> | null;
  bag: FaultKind[];
}

/** One visitor stream: the classifier's view of it plus the visitor's working state. */
export interface StreamRec extends StreamOutcome {
  id: number;
  visitorClose: "early" | "late";
  visitorSlowMs: number;
  /** Size of the visitor's writes. */
  chunk: number;
  openedAt: number;
  localPort: number;
  sock: Socket<StreamRec> | null;
  /** The header, until it is handed to `pending`. */
  header: Uint8Array | null;
  source: PatternSource;
  verifier: PatternVerifier;
  /** Bytes produced and not yet written. */
  pending: Uint8Array | null;
  eof: boolean;
  finSent: boolean;
  aborted: boolean;
  /** A write returned -1: the peer reset the connection (Bun then reports a clean end and close). */
  writeFailed: boolean;
  sinceSlow: number;
  slowTimer: ReturnType<typeof setTimeout> | null;
  lastProgressAt: number;
  targetProgressAt: number;
  targetUp: number;
  targetDown: number;
  /** The access line was matched by time (the visitor never opened, so its port is unknown). */
  accessByTime: boolean;
  /** Resolves the visitor loop's wait for this stream. */
  done: () => void;
}

/** Counts over the run. */
export interface Totals {
  started: number;
  ok: number;
  failedExplained: number;
  abortsAsExpected: number;
  unexplained: number;
  silentTruncations: number;
  slowFailures: number;
  corruptStreams: number;
  corruptBytes: number;
  hangs: number;
  bytesVerified: number;
  connectRefused: number;
  lateTargetResults: number;
  explainedBy: Map<string, number>;
  /** For explained failures: ms from the fault (or the stream's start, if later) to the stream's end, by kind. */
  failLatencies: Map<string, number[]>;
  failReasons: Map<string, number>;
}

/** Streams in flight and the totals of settled ones. */
export interface StreamTable {
  nextId: number;
  readonly open: Map<number, StreamRec>;
  /** Open visitors by `server:localPort`, for matching their access lines. */
  readonly byPort: Map<string, StreamRec>;
  readonly access: AccessBook;
  readonly totals: Totals;
}

/** load: visitors and faults run; quiet: a checkpoint; done: shutting down. */
export type Phase = "load" | "quiet" | "done";

/** The load phases. */
export interface LoadState {
  phase: Phase;
  shuttingDown: boolean;
  /** The visitor loops of the current load phase. */
  loops: Promise<void>[];
  /** Counts load phases (a fault loop stops when a new phase starts). */
  gen: number;
  /** Largest event-loop lag of the soak since the last checkpoint report, ms. */
  lagMaxMs: number;
}

/** What one checkpoint found at rest. */
export interface Checkpoint {
  at: number;
  label: string;
  settled: boolean;
  samples: Record<string, ProcSample & { gen: number }>;
  totals: { ok: number; failedExplained: number; unexplained: number; corruptBytes: number; hangs: number; bytesVerified: number; started: number };
}

/** Everything one run knows. */
export interface Soak {
  readonly opts: Options;
  readonly limits: Limits;
  /** The one seeded generator of every random choice (stream shapes and faults). */
  readonly rng: Prng;
  readonly journal: Journal;
  readonly files: LogFiles;
  readonly procs: ProcTable;
  /** The soak's own process entry. */
  readonly self: Proc;
  readonly servers: ServerSlot[];
  readonly proxies: SoakProxy[];
  target: TargetHandle | null;
  readonly agentNames: string[];
  /** Reasons the servers gave for closed agent connections (for diagnosing unexplained failures). */
  readonly connClosedReason: Map<string, string>;
  readonly faults: FaultState;
  readonly streams: StreamTable;
  readonly load: LoadState;
  readonly checkpoints: Checkpoint[];
  /** The UDP visitors (udp.ts): the echo's port, each visitor's next sequence number, the totals. */
  readonly udp: { echoPort: number; nextVisitor: number; nextSeq: Map<number, number>; totals: UdpTotals };
}

function newTotals(): Totals {
  return {
    started: 0,
    ok: 0,
    failedExplained: 0,
    abortsAsExpected: 0,
    unexplained: 0,
    silentTruncations: 0,
    slowFailures: 0,
    corruptStreams: 0,
    corruptBytes: 0,
    hangs: 0,
    bytesVerified: 0,
    connectRefused: 0,
    lateTargetResults: 0,
    explainedBy: new Map(),
    failLatencies: new Map(),
    failReasons: new Map(),
  };
}

/** A new run with options `opts` (its log directory must exist); nothing is started yet. */
export function createSoak(opts: Options): Soak {
  const journal = new Journal();
  const load: LoadState = { phase: "quiet", shuttingDown: false, loops: [], gen: 0, lagMaxMs: 0 };
  const procs = new ProcTable((p, code) => {
    if (!load.shuttingDown) journal.finding(`${p.name}#${p.gen} (pid ${p.pid}) exited on its own with code ${code}`);
  });
  return {
    opts,
    limits: limitsFor(opts),
    rng: new Prng(opts.seed),
    journal,
    files: new LogFiles(opts.logDir),
    procs,
    self: procs.add("soak", process.pid, null, null),
    servers: [],
    proxies: [],
    target: null,
    agentNames: Array.from({ length: opts.agents }, (_, i) => `agent-${i + 1}`),
    connClosedReason: new Map(),
    faults: { log: [], counts: new Map(), agentStops: [], processFault: null, bag: [] },
    streams: { nextId: 1, open: new Map(), byPort: new Map(), access: new AccessBook(), totals: newTotals() },
    load,
    checkpoints: [],
    udp: { echoPort: 0, nextVisitor: 1, nextSeq: new Map(), totals: newUdpTotals() },
  };
}

/** Adds `n` to `m[k]`. */
export function bump(m: Map<string, number>, k: string, n = 1): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `cond()` holds (true) or `timeoutMs` passed (false), polling every `stepMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
  return true;
}
