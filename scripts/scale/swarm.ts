/**
 * A swarm of synthetic agents in one process: every agent keeps `connsPerAgent` data connections to every server
 * (scripts/scale/agent-conn.ts speaks the protocol), each from the agent's own loopback source address when the
 * plan gives one (so per-address limits see many agents, as in the field, and the ephemeral port range is never
 * the limit). A connection slot lives as an agent's does (SPEC.md; the documented TUNNEL_RECONNECT_* behaviour):
 * dial, handshake, serve; when refused or lost, wait and dial again. The wait is capped exponential backoff with
 * full jitter (a healthy connection, up 10 s or more, starts again from the base), and at least a SERVER_BUSY
 * answer's retry_after_ms; after a GOAWAY a connection with streams keeps serving them while a replacement dials.
 *
 * Counters since the last {@link Swarm.mark} say what a scenario measures: registration times, and per slot the
 * refusals it met (SERVER_BUSY, closes before a response, dial errors, timeouts).
 */
import type { Socket } from "bun";
import { Prng } from "../../test/support/protocol-prng.ts";
import { flushQueue, writeOrQueue } from "../../test/support/write-queue.ts";
import { AgentConn } from "./agent-conn.ts";

/** Where and how the swarm connects. */
export interface SwarmPlan {
  seed: number;
  tls: boolean;
  /** Server agent addresses (every agent connects to each). */
  servers: { host: string; port: number }[];
  /** One per agent: its host name and source address (null: the system's choice). */
  agents: { hostName: string; source: string | null }[];
  connsPerAgent: number;
  cluster: string;
  credential: string;
  services: string[];
  /** Per-stream receive window the swarm grants. */
  window: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  /** A connection counts as having carried a stream once it echoed this many bytes. */
  carryBytes: number;
}

/** Refusal tallies since the mark. */
export interface Refusals {
  busy: number;
  /** Closed (or reset) before any response: e.g. a TLS connection refused on accept. */
  bareCloses: number;
  /** The dial failed (refused, unreachable). */
  connectErrors: number;
  timeouts: number;
  /** The server broke SPEC.md (the first messages are in `errors`). */
  failures: number;
}

/** What one swarm process reports. */
export interface SwarmReport extends Refusals {
  slots: number;
  registered: number;
  /** Registrations since the mark. */
  registeredSinceMark: number;
  /** Registration times since the mark (epoch ms), sorted; only in full reports. */
  registrations: number[];
  /** Connections lost after registering, since the mark. */
  lost: number;
  /** Slots by refusals met since the mark: index = refusals (the last entry counts that many or more). */
  refusalHistogram: number[];
  /** Live connections that echoed at least carryBytes. */
  carried: number;
  echoedBytes: number;
  streamsOpened: number;
  errors: string[];
}

/** A connection up this long counts as healthy: when lost, its slot redials from the base backoff (as an agent's). */
export const HEALTHY_MS = 10_000;
const HISTOGRAM_MAX = 10;

/** Epoch milliseconds with sub-millisecond resolution (comparable across the kit's processes). */
export const nowMs = () => performance.timeOrigin + performance.now();

/** One connection: the protocol state, its socket once open, and what waits for the socket's room. */
interface Link {
  conn: AgentConn;
  sock: Socket<Slot> | null;
  queue: Uint8Array[];
}

/** One connection slot: (agent, server, index). */
class Slot {
  /** The slot's current connection (dialling, handshaking or registered). */
  link: Link | null = null;
  readyAt = 0;
  /** The current connection is registered. */
  up = false;
  attempt = 0;
  refusals = 0;
  timer: Timer | null = null;
  /** Why the current attempt ended, decided before the close. */
  outcome: "busy" | "refused" | "failed" | "timeout" | null = null;
  retryAfterMs = 0;

  constructor(
    readonly agent: number,
    readonly server: number,
    readonly index: number,
  ) {}
}

/** Synthetic agents dialling the plan's servers; see the file comment. */
export class Swarm {
  private readonly slots: Slot[] = [];
  private readonly prng: Prng;
  private readonly services: Set<string>;
  /** Connections replaced after a GOAWAY, finishing their streams. */
  private readonly draining = new Set<Link>();
  private stopped = false;
  private registered = 0;
  private since = this.freshTallies();
  private echoedClosed = 0;
  private streamsClosed = 0;
  private readonly errors: string[] = [];

  constructor(private readonly plan: SwarmPlan) {
    this.prng = new Prng(plan.seed);
    this.services = new Set(plan.services);
    for (let a = 0; a < plan.agents.length; a++) {
      for (let s = 0; s < plan.servers.length; s++) for (let i = 0; i < plan.connsPerAgent; i++) this.slots.push(new Slot(a, s, i));
    }
  }

  private freshTallies() {
    return { busy: 0, bareCloses: 0, connectErrors: 0, timeouts: 0, failures: 0, lost: 0, registrations: [] as number[], refusals: new Map<Slot, number>() };
  }

  /** Dials every slot at once (a storm when the server is up). */
  start(): void {
    for (const s of this.slots) this.dial(s);
  }

  /** Starts a new measuring period: registration times and refusals count from now. */
  mark(): void {
    this.since = this.freshTallies();
  }

  /** The counters (with every registration time if `full`). */
  report(full: boolean): SwarmReport {
    const hist = new Array<number>(HISTOGRAM_MAX + 1).fill(0);
    for (const s of this.slots) {
      const r = Math.min(HISTOGRAM_MAX, this.since.refusals.get(s) ?? 0);
      hist[r] = (hist[r] as number) + 1;
    }
    let carried = 0;
    let echoed = this.echoedClosed;
    let streams = this.streamsClosed;
    for (const s of this.slots) {
      const c = s.link?.conn;
      if (c === undefined || c.state !== "open") continue;
      if (c.echoedBytes >= this.plan.carryBytes) carried++;
      echoed += c.echoedBytes;
      streams += c.streamsOpened;
    }
    const { busy, bareCloses, connectErrors, timeouts, failures, lost } = this.since;
    return {
      slots: this.slots.length,
      registered: this.registered,
      registeredSinceMark: this.since.registrations.length,
      registrations: full ? [...this.since.registrations].sort((a, b) => a - b) : [],
      busy, bareCloses, connectErrors, timeouts, failures, lost,
      refusalHistogram: hist,
      carried,
      echoedBytes: echoed,
      streamsOpened: streams,
      errors: this.errors.slice(0, 5),
    };
  }

  /** Closes every connection (FIN) and dials no more. */
  stop(): void {
    this.stopped = true;
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      s.link?.sock?.end();
    }
    for (const l of this.draining) l.sock?.end();
  }

  private refused(s: Slot, kind: "busy" | "bareCloses" | "connectErrors" | "timeouts" | "failures"): void {
    this.since[kind]++;
    this.since.refusals.set(s, (this.since.refusals.get(s) ?? 0) + 1);
  }

  /** Keeps the first few distinct error messages for the report. */
  private note(e: string): void {
    if (this.errors.length < 20 && !this.errors.includes(e)) this.errors.push(e);
  }

  /** The next delay: full jitter under min(cap, base·2^attempt), at least `atLeast`. */
  private delay(s: Slot, atLeast = 0): number {
    const ceiling = Math.min(this.plan.reconnectMaxMs, this.plan.reconnectBaseMs * 2 ** Math.min(s.attempt, 30));
    s.attempt++;
    return Math.max(atLeast, Math.floor(this.prng.next() * ceiling));
  }

  private schedule(s: Slot, ms: number): void {
    if (this.stopped) return;
    s.timer = setTimeout(() => {
      s.timer = null;
      this.dial(s);
    }, ms);
  }

  private dial(s: Slot): void {
    if (this.stopped) return;
    const plan = this.plan;
    const agent = plan.agents[s.agent] as SwarmPlan["agents"][number];
    const server = plan.servers[s.server] as SwarmPlan["servers"][number];
    s.outcome = null;
    // The callbacks run only once the connection started, after `link` is set below.
    let link!: Link;
    const conn = new AgentConn(
      { cluster: plan.cluster, weight: 10, hostName: agent.hostName, credential: plan.credential, slot: s.index, instance: `swarm-${plan.seed}-${s.agent}`, window: plan.window, maxFrame: 262_144 },
      this.services,
      {
        write: (b) => void (link.sock && writeOrQueue(link.sock, link.queue, b)),
        registered: () => this.onRegistered(s, link),
        refused: (r) => {
          s.outcome = r.status === 17 ? "busy" : "refused";
          s.retryAfterMs = r.retryAfterMs ?? 0;
          if (r.status !== 17) this.note(`handshake refused with status ${r.status}`);
          link.sock?.end();
        },
        goaway: () => this.onGoAway(s, link),
        failed: (e) => {
          s.outcome = "failed";
          this.note(`${e.code}: ${e.message}`);
          link.sock?.terminate();
        },
      },
    );
    link = { conn, sock: null, queue: [] };
    s.link = link;
    const deadline = setTimeout(() => {
      if (s.link !== link || link.conn.state !== "handshaking") return;
      s.outcome = "timeout";
      if (link.sock) link.sock.terminate();
      else this.ended(s, link);
    }, plan.connectTimeoutMs);
    const handlers = this.handlers(s, link, deadline);
    const opts = { hostname: server.host, port: server.port, data: s, socket: handlers, ...(agent.source ? { localAddress: agent.source } : {}) };
    const p = plan.tls ? Bun.connect<Slot>({ ...opts, tls: { rejectUnauthorized: false } }) : Bun.connect<Slot>(opts);
    p.catch(() => {}); // connectError reports it
  }

  private handlers(s: Slot, link: Link, deadline: Timer) {
    const conn = link.conn;
    const base = {
      open: (sock: Socket<Slot>) => {
        if (s.link !== link) return void sock.terminate();
        link.sock = sock;
        if (!this.plan.tls) conn.start();
      },
      data: (sock: Socket<Slot>, chunk: Uint8Array) => {
        conn.feed(chunk);
        if (conn.goneAway && conn.activeStreams === 0) sock.end();
      },
      drain: (sock: Socket<Slot>) => void flushQueue(sock, link.queue),
      end: (sock: Socket<Slot>) => void sock.end(),
      close: () => {
        clearTimeout(deadline);
        if (this.draining.delete(link)) return this.retire(conn);
        if (s.link === link) this.ended(s, link);
      },
      connectError: (_sock: Socket<Slot>, e: Error) => {
        clearTimeout(deadline);
        if (s.link !== link) return;
        this.refused(s, "connectErrors");
        s.link = null;
        const code = (e as Error & { code?: string }).code ?? e.message;
        if (code !== "ECONNREFUSED") this.note(`dial: ${code}`);
        this.schedule(s, this.delay(s));
      },
    };
    if (!this.plan.tls) return base;
    return {
      ...base,
      // With a handshake handler Bun fires open at TCP connect, this once the TLS handshake is done. The swarm
      // trusts any server certificate (it measures the server, not certificate checks): with rejectUnauthorized
      // false Bun still reports ok=false for a certificate that does not verify, with the check's error code.
      handshake: (sock: Socket<Slot>, ok: boolean, error: Error | null) => {
        if (s.link !== link) return;
        const code = (error as (Error & { code?: string }) | null)?.code ?? "";
        if (!ok && !/CERT|SELF_SIGNED|ISSUER|ALTNAME|HOSTNAME|UNABLE_TO_VERIFY/.test(code)) return void sock.terminate();
        conn.start();
      },
    };
  }

  private onRegistered(s: Slot, link: Link): void {
    if (s.link !== link) return;
    this.registered++;
    s.up = true;
    s.readyAt = performance.now();
    this.since.registrations.push(nowMs());
  }

  /** The server opens no more streams here: replace the connection (now if it was healthy), keep it until idle. */
  private onGoAway(s: Slot, link: Link): void {
    if (s.link !== link) return;
    if (link.conn.activeStreams === 0) {
      link.sock?.end();
      return;
    }
    this.registered--;
    s.up = false;
    this.draining.add(link);
    s.link = null;
    if (performance.now() - s.readyAt >= HEALTHY_MS) {
      s.attempt = 0;
      this.dial(s);
    } else {
      this.schedule(s, this.delay(s));
    }
  }

  private retire(conn: AgentConn): void {
    this.echoedClosed += conn.echoedBytes;
    this.streamsClosed += conn.streamsOpened;
  }

  /** The slot's connection closed: count why, and dial again after the delay. */
  private ended(s: Slot, link: Link): void {
    const conn = link.conn;
    s.link = null;
    this.retire(conn);
    if (s.up) {
      s.up = false;
      this.registered--;
      this.since.lost++;
      if (conn.state === "failed") this.since.failures++;
      if (performance.now() - s.readyAt >= HEALTHY_MS) s.attempt = 0;
      return this.schedule(s, this.delay(s));
    }
    const outcome = s.outcome ?? (conn.state === "failed" ? "failed" : null);
    if (outcome === "busy") this.refused(s, "busy");
    else if (outcome === "timeout") this.refused(s, "timeouts");
    else if (outcome === "failed") this.refused(s, "failures");
    else if (outcome === null) this.refused(s, "bareCloses");
    // "refused" (another status: a configuration error) waits as an agent does after an auth failure.
    const atLeast = outcome === "busy" ? s.retryAfterMs : outcome === "refused" ? this.plan.reconnectMaxMs / 2 : 0;
    this.schedule(s, this.delay(s, atLeast));
  }
}
