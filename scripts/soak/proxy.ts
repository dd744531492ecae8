/**
 * The soak's fault-injecting TCP proxy (agents → proxy → server), one per server. Unlike test/support/fault-proxy.ts
 * it keeps byte order under changing latency (one FIFO per direction with due times), can hold bytes for a while
 * (a stall shorter than the liveness timeout), drops bytes one way or both ways for good (a blackhole that never
 * forwards FIN or RST, while still reading so that it sees each side close), and names every connection: it taps
 * the handshake in both directions (agent host name, role, slot → the server's connection id), so a stream that the
 * server's access log puts on connection `abc-7` can be traced to the proxied connection and the faults it suffered.
 */
import type { Socket, TCPSocketListener } from "bun";
import { HandshakeDecoder } from "../../src/protocol/handshake.ts";
import { HandshakeFlag, HandshakeStatus } from "../../src/protocol/constants.ts";

/** Above this many queued bytes in one direction the source socket is paused. */
const QUEUE_HIGH_BYTES = 8 * 1024 * 1024;

/** A fault applied to one proxied connection. */
export type ConnFault =
  | { kind: "cut"; at: number }
  | { kind: "blackhole"; at: number; dir: "both" | "up" | "down" }
  | { kind: "latency"; at: number; until: number; ms: number }
  | { kind: "stall"; at: number; until: number };

/** What the handshake tap learned about a connection. */
export interface ConnIdentity {
  hostName?: string;
  role?: string;
  slot?: number;
  /** Handshake response status (HandshakeStatus.SUCCESS = 1). */
  status?: number;
  connectionId?: string;
}

interface Item {
  buf: Uint8Array;
  due: number;
}

type Side = "client" | "upstream";

/** One direction of a proxied connection. */
class Direction {
  readonly queue: Item[] = [];
  queued = 0;
  /** Drop everything from now on (blackhole); FIN and RST are not forwarded either. */
  drop = false;
  delayMs = 0;
  holdUntil = 0;
  /** The source sent FIN (or closed cleanly): end the destination once the queue is empty. */
  sourceEnded = false;
  /** The source was reset: reset the destination once the queue is empty. */
  sourceReset = false;
  /** Destination said "no more for now" (short write): wait for drain. */
  blocked = false;
  timer: ReturnType<typeof setTimeout> | null = null;
  sourcePaused = false;
  tap: HandshakeDecoder | null;

  constructor(
    readonly conn: ProxiedConn,
    readonly from: Side,
    readonly to: Side,
    flag: HandshakeFlag,
  ) {
    this.tap = new HandshakeDecoder({ accept: [flag] });
  }
}

/** One agent connection through the proxy. */
export class ProxiedConn {
  readonly openedAt = Date.now();
  closedAt = 0;
  client: Socket<SockData> | null = null;
  upstream: Socket<SockData> | null = null;
  clientClosed = false;
  upstreamClosed = false;
  upstreamConnected = false;
  readonly id: ConnIdentity = {};
  readonly faults: ConnFault[] = [];
  readonly up: Direction;
  readonly down: Direction;
  cutDone = false;
  /** The agent (client) or the server (upstream) ended or closed its side. */
  clientEnded = false;
  upstreamEnded = false;
  bytesUp = 0;
  bytesDown = 0;

  constructor(
    readonly proxy: SoakProxy,
    /** Number of this connection at its proxy (1, 2, …), for reports. */
    readonly n: number,
    private readonly onIdentified: (c: ProxiedConn) => void,
  ) {
    this.up = new Direction(this, "client", "upstream", HandshakeFlag.INIT_INFO);
    this.down = new Direction(this, "upstream", "client", HandshakeFlag.INIT_RESPONSE);
  }

  /** Both sockets gone. */
  get closed(): boolean {
    return this.clientClosed && this.upstreamClosed;
  }

  /** Handshake done with status success and a connection id. */
  get established(): boolean {
    return this.id.status === HandshakeStatus.SUCCESS && this.id.connectionId !== undefined;
  }

  /** Blackholed in either direction. */
  get blackholed(): boolean {
    return this.up.drop || this.down.drop;
  }

  sock(side: Side): Socket<SockData> | null {
    return side === "client" ? this.client : this.upstream;
  }

  sideClosed(side: Side): boolean {
    return side === "client" ? this.clientClosed : this.upstreamClosed;
  }

  /** RST both ways at once. */
  cut(): void {
    this.faults.push({ kind: "cut", at: Date.now() });
    this.cutDone = true;
    for (const d of [this.up, this.down]) {
      d.queue.length = 0;
      d.queued = 0;
      if (d.timer !== null) clearTimeout(d.timer);
      d.timer = null;
    }
    this.client?.terminate();
    this.upstream?.terminate();
  }

  /** Drops bytes (and FIN/RST) one way or both ways from now on, for good; the sockets stay open. */
  blackhole(dir: "both" | "up" | "down"): void {
    this.faults.push({ kind: "blackhole", at: Date.now(), dir });
    const ds = dir === "both" ? [this.up, this.down] : dir === "up" ? [this.up] : [this.down];
    for (const d of ds) {
      d.drop = true;
      d.queue.length = 0;
      d.queued = 0;
      if (d.timer !== null) clearTimeout(d.timer);
      d.timer = null;
      // Keep reading (and discarding) so that we see the source close.
      if (d.sourcePaused) {
        d.sourcePaused = false;
        this.sock(d.from)?.resume();
      }
    }
  }

  /** Adds `ms` of latency both ways for `forMs`. */
  latency(ms: number, forMs: number): void {
    const at = Date.now();
    this.faults.push({ kind: "latency", at, until: at + forMs, ms });
    this.up.delayMs = ms;
    this.down.delayMs = ms;
    setTimeout(() => {
      this.up.delayMs = 0;
      this.down.delayMs = 0;
    }, forMs).unref?.();
  }

  /** Holds every byte both ways for `forMs`, then delivers them in order. */
  stall(forMs: number): void {
    const at = Date.now();
    this.faults.push({ kind: "stall", at, until: at + forMs });
    this.up.holdUntil = at + forMs;
    this.down.holdUntil = at + forMs;
  }

  /** Ends latency and holds (not blackholes) now. */
  heal(): void {
    for (const d of [this.up, this.down]) {
      d.delayMs = 0;
      d.holdUntil = 0;
      for (const it of d.queue) it.due = 0;
      flush(d);
    }
  }

  identified(): void {
    this.onIdentified(this);
  }
}

interface SockData {
  conn: ProxiedConn;
  side: Side;
}

function dirFrom(conn: ProxiedConn, side: Side): Direction {
  return side === "client" ? conn.up : conn.down;
}

function sniff(d: Direction, chunk: Uint8Array): void {
  const tap = d.tap;
  if (tap === null) return;
  const r = tap.push(chunk);
  if (r.kind === "more") return;
  d.tap = null;
  if (r.kind === "error") return;
  const c = d.conn;
  const m = r.message;
  if (m.flag === HandshakeFlag.INIT_INFO) {
    c.id.hostName = m.body.host_name;
    const bc = (m.body.extra as { backchannel?: { role?: string; slot?: number } } | null)?.backchannel;
    c.id.role = bc?.role;
    c.id.slot = bc?.slot;
  } else if (m.flag === HandshakeFlag.INIT_RESPONSE) {
    c.id.status = m.body.status;
    c.id.connectionId = m.body.connection_id;
    c.identified();
  }
}

function onSourceData(d: Direction, chunk: Uint8Array): void {
  if (d.drop) return;
  if (d.tap !== null) sniff(d, chunk);
  if (d.from === "client") d.conn.bytesUp += chunk.byteLength;
  else d.conn.bytesDown += chunk.byteLength;
  const now = Date.now();
  const due = Math.max(d.delayMs > 0 ? now + d.delayMs : 0, d.holdUntil);
  d.queue.push({ buf: chunk, due });
  d.queued += chunk.byteLength;
  flush(d);
  if (d.queued > QUEUE_HIGH_BYTES && !d.sourcePaused) {
    d.sourcePaused = true;
    d.conn.sock(d.from)?.pause();
  }
}

/** Writes due bytes to the destination; arms a timer for the next due item; forwards FIN/RST after the queue. */
function flush(d: Direction): void {
  const c = d.conn;
  if (d.drop) return;
  const dst = c.sock(d.to);
  if (dst === null || (d.to === "upstream" && !c.upstreamConnected)) return;
  if (c.sideClosed(d.to)) {
    d.queue.length = 0;
    d.queued = 0;
    return;
  }
  const now = Date.now();
  while (d.queue.length > 0) {
    const head = d.queue[0] as Item;
    if (head.due > now) {
      if (d.timer === null) {
        d.timer = setTimeout(() => {
          d.timer = null;
          flush(d);
        }, head.due - now);
      }
      break;
    }
    if (d.blocked) return;
    const n = dst.write(head.buf);
    if (n < 0) {
      d.queue.length = 0;
      d.queued = 0;
      return;
    }
    d.queued -= Math.max(0, n);
    if (n < head.buf.byteLength) {
      head.buf = head.buf.subarray(Math.max(0, n));
      d.blocked = true;
      return;
    }
    d.queue.shift();
  }
  if (d.sourcePaused && d.queued < QUEUE_HIGH_BYTES / 2) {
    d.sourcePaused = false;
    c.sock(d.from)?.resume();
  }
  if (d.queue.length === 0) {
    if (d.sourceReset) dst.terminate();
    else if (d.sourceEnded) dst.shutdown();
  }
}

/**
 * A blackholed connection whose two owners have both given up on it (each ended or closed its side) is dropped by
 * the proxy too; otherwise the proxy would keep the half-closed socket of a side whose FIN went nowhere forever.
 */
function reapIfAbandoned(conn: ProxiedConn): void {
  if (!conn.blackholed || !conn.clientEnded || !conn.upstreamEnded) return;
  if (!conn.clientClosed) conn.client?.terminate();
  if (!conn.upstreamClosed) conn.upstream?.terminate();
}

function onClosed(conn: ProxiedConn, side: Side, error?: Error): void {
  if (side === "client") conn.clientClosed = conn.clientEnded = true;
  else conn.upstreamClosed = conn.upstreamEnded = true;
  reapIfAbandoned(conn);
  if (conn.closed && conn.closedAt === 0) {
    conn.closedAt = Date.now();
    conn.proxy.live.delete(conn);
  }
  if (conn.cutDone) return;
  const d = dirFrom(conn, side);
  if (d.drop) return; // a blackhole swallows the close too
  if (error) d.sourceReset = true;
  else d.sourceEnded = true;
  // Nothing more will arrive from this side; stop delaying what is queued towards the other side.
  // (If the upstream is still dialling, its open handler flushes and closes it.)
  flush(d);
}

const handlers = {
  binaryType: "uint8array" as const,
  data(s: Socket<SockData>, chunk: Uint8Array) {
    onSourceData(dirFrom(s.data.conn, s.data.side), chunk);
  },
  drain(s: Socket<SockData>) {
    const d = s.data.side === "client" ? s.data.conn.down : s.data.conn.up;
    d.blocked = false;
    flush(d);
  },
  end(s: Socket<SockData>) {
    const conn = s.data.conn;
    const d = dirFrom(conn, s.data.side);
    if (conn.cutDone) return;
    if (s.data.side === "client") conn.clientEnded = true;
    else conn.upstreamEnded = true;
    reapIfAbandoned(conn);
    if (d.drop) {
      // The FIN goes nowhere; release our own socket to that side (its owner has given up on it).
      s.end();
      return;
    }
    d.sourceEnded = true;
    flush(d);
  },
  close(s: Socket<SockData>, error?: Error) {
    onClosed(s.data.conn, s.data.side, error);
  },
  error() {},
};

/** A running proxy for one server. */
export class SoakProxy {
  port = 0;
  /** Connections with at least one socket open. */
  readonly live = new Set<ProxiedConn>();
  /** Every connection the server named, for the whole run (for attributing failed streams). */
  readonly byConnectionId = new Map<string, ProxiedConn>();
  accepted = 0;
  private listener: TCPSocketListener<SockData> | null = null;

  constructor(
    readonly index: number,
    public upstreamPort: number,
  ) {}

  start(): void {
    const l = Bun.listen<SockData>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        ...handlers,
        open: (s) => this.accept(s),
      },
    });
    this.listener = l;
    this.port = l.port;
  }

  private accept(client: Socket<SockData>): void {
    this.accepted++;
    const conn = new ProxiedConn(this, this.accepted, (c) => {
      if (c.id.connectionId !== undefined) this.byConnectionId.set(c.id.connectionId, c);
    });
    this.live.add(conn);
    client.data = { conn, side: "client" };
    conn.client = client;
    client.setNoDelay(true);
    Bun.connect<SockData>({
      hostname: "127.0.0.1",
      port: this.upstreamPort,
      allowHalfOpen: true,
      data: { conn, side: "upstream" },
      socket: {
        ...handlers,
        open(u) {
          conn.upstream = u;
          u.setNoDelay(true);
          conn.upstreamConnected = true;
          if (conn.cutDone) {
            u.terminate();
            return;
          }
          flush(conn.up);
        },
        connectError() {
          conn.upstreamClosed = true;
          if (conn.clientClosed && conn.closedAt === 0) {
            conn.closedAt = Date.now();
            conn.proxy.live.delete(conn);
          }
          conn.client?.terminate();
        },
      },
    }).catch(() => {});
  }

  /** Established connections currently carrying an agent's data or aside session. */
  established(): ProxiedConn[] {
    return [...this.live].filter((c) => c.established && !c.blackholed && !c.cutDone);
  }

  /** Forgets connections closed more than `ms` ago (bounded memory over long runs). */
  forgetClosed(ms: number): void {
    const before = Date.now() - ms;
    for (const [id, c] of this.byConnectionId) if (c.closedAt !== 0 && c.closedAt < before) this.byConnectionId.delete(id);
  }

  /** Stops faults that end by themselves (latency, stalls). */
  healAll(): void {
    for (const c of this.live) c.heal();
  }

  stop(): void {
    this.listener?.stop(true);
    for (const c of this.live) {
      c.client?.terminate();
      c.upstream?.terminate();
    }
  }
}
