/**
 * A userspace WAN link for loopback tests and the benchmark (`npm run bench -- --wan`): this kernel has no netem.
 *
 * A {@link WanLink} is one emulated link with two directions, "up" (from whoever connects to one of its ports
 * towards that port's target) and "down" (back). Every connection through any of its ports shares it. Each
 * direction is a serialisation clock followed by a delay line:
 *
 * - a chunk read from a sender at time `now` is split into segments of about 1 ms of link time; a segment of n
 *   bytes leaves at `free = max(now, free) + n / rate` (the rate is shared by every connection of the link, in
 *   arrival order: one FIFO, no fair queueing) and arrives `rtt / 2` later, when it is written to the receiver;
 * - the bytes that have not left yet are the bottleneck queue, `(free - now) × rate`, bounded by a limit (default
 *   one bandwidth-delay product + 64 KiB). What a sender delivers while the queue is full (Bun hands over whole
 *   reads, up to hundreds of KiB) is held for it and the sender is paused (its socket is not read, so TCP
 *   backpressure reaches it); as the queue drains, waiting senders are served round-robin, one segment each, so a
 *   small message waits behind a full queue and at most one segment per other waiting sender. Nothing is ever
 *   dropped: the link's own sockets are reliable, so backpressure is the honest model of a full bottleneck;
 * - FIN and reset travel as markers in the same FIFO (in order, no link time); a receiver that does not read
 *   holds at most {@link BACKLOG_LIMIT} bytes here before its sender is paused as well (a closed receive window).
 *
 * One timer per direction (for the head of the delay line, or for the moment the queue has room again); Bun's
 * timers have about 1 ms resolution, so arrivals are 0–1 ms late, never early. Limits of the model: no loss, no
 * reordering, no jitter, no cross traffic, the TCP handshake costs no round trip, and each TCP connection ends at
 * the link (split TCP): the end-to-end congestion window and receive window do not apply, so one connection
 * through the link reaches the link rate after one round trip. The kernel buffers of the loopback hop into the
 * link (the sender's send buffer, the link's receive buffer) hold bytes ahead of the bottleneck, like a send buffer.
 */
import type { Socket, TCPSocketListener } from "bun";

/** A receiver's bytes held here (arrived, not yet taken by its socket) above which its sender is paused. */
export const BACKLOG_LIMIT = 1024 * 1024;
/** Slack added to one bandwidth-delay product for the default queue limit. */
export const QUEUE_SLACK_BYTES = 64 * 1024;

/** One link's settings. */
export interface LinkSettings {
  /** Round-trip time the link adds, ms; each direction delays by half of it. */
  rttMs: number;
  /** Rate of each direction, Mbit/s (10^6 bits per second). */
  mbit: number;
  /** Bottleneck queue limit of each direction, bytes; default {@link defaultQueueBytes}. */
  queueBytes?: number;
}

/** One bandwidth-delay product (rate × RTT) + {@link QUEUE_SLACK_BYTES}, in bytes. */
export function defaultQueueBytes(s: { rttMs: number; mbit: number }): number {
  return Math.round((s.mbit * 1e6 * s.rttMs) / 8000) + QUEUE_SLACK_BYTES;
}

/** What one direction did so far. */
export interface LaneStats {
  /** Bytes taken from senders. */
  bytesIn: number;
  /** Bytes waiting for link time now (the bottleneck queue). */
  queuedBytes: number;
  /** Largest bottleneck queue seen, bytes (at most the limit + one segment of 64 KiB or less). */
  peakQueuedBytes: number;
  /** Bytes queued or on the wire (not yet arrived). */
  unarrivedBytes: number;
  /** Senders paused because the queue could not take all they sent. */
  waitingSenders: number;
  /** The bytes those senders still hold (the rest of their last read). */
  heldBytes: number;
}

/** What the link did so far. */
export interface LinkStats {
  settings: Required<LinkSettings>;
  /** Proxied connections open now. */
  connections: number;
  up: LaneStats;
  down: LaneStats;
  /** Nothing queued, on the wire or held for a receiver, in either direction. */
  idle: boolean;
}

/** What an item carries. */
const Kind = { Data: 0, Fin: 1, Reset: 2 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

interface Item {
  to: End;
  kind: Kind;
  data: Uint8Array | null;
  /** Arrival time (performance.now ms). */
  at: number;
}

/** One socket of a proxied connection, and what is held for it. */
class End {
  sock: Socket<End> | null = null;
  peer!: End;
  /** What this socket read and the bottleneck queue did not take yet (it is paused meanwhile). */
  readonly pending: Pending[] = [];
  /** Bytes that arrived for this socket and its kernel did not take yet. */
  readonly backlog: Uint8Array[] = [];
  backlogBytes = 0;
  /** A FIN arrived: shut this socket down once the backlog is out. */
  finPending = false;
  /** This socket's peer sent FIN (seen by the `end` handler). */
  sawEnd = false;
  closed = false;
  holdFull = false;
  holdBacklog = false;

  constructor(
    readonly conn: Conn,
    /** The direction that carries what this socket reads. */
    readonly lane: Lane,
  ) {}

  /** Pauses or resumes reading this socket for one reason; reads go on only when no reason holds. */
  hold(reason: "full" | "backlog", on: boolean): void {
    const before = this.holdFull || this.holdBacklog;
    if (reason === "full") this.holdFull = on;
    else this.holdBacklog = on;
    const after = this.holdFull || this.holdBacklog;
    if (before === after || this.sock === null || this.closed) return;
    if (after) this.sock.pause();
    else this.sock.resume();
  }

  /** An item arrived for this socket. */
  deliver(item: Item): void {
    if (this.closed) return;
    if (item.kind === Kind.Reset) {
      this.closed = true;
      this.backlog.length = 0;
      this.backlogBytes = 0;
      this.sock?.terminate();
      return;
    }
    if (item.kind === Kind.Fin) {
      this.finPending = true;
    } else if (item.data !== null) {
      this.backlog.push(item.data);
      this.backlogBytes += item.data.byteLength;
    }
    this.flush();
  }

  /** Writes the backlog until the kernel takes no more; FIN after it; resumes the sender once it is small. */
  flush(): void {
    const s = this.sock;
    if (s === null || this.closed) return;
    while (this.backlog.length > 0) {
      const head = this.backlog[0] as Uint8Array;
      const n = s.write(head);
      if (n > 0) this.backlogBytes -= n;
      if (n < head.byteLength) {
        this.backlog[0] = head.subarray(Math.max(0, n));
        break;
      }
      this.backlog.shift();
    }
    if (this.backlog.length === 0 && this.finPending) {
      this.finPending = false;
      s.shutdown();
    }
    if (this.backlogBytes > BACKLOG_LIMIT) this.peer.hold("backlog", true);
    else if (this.backlogBytes <= BACKLOG_LIMIT / 2) this.peer.hold("backlog", false);
  }
}

/** One proxied connection: the socket that connected to the link and the one the link opened to the target. */
class Conn {
  readonly client: End;
  readonly upstream: End;

  constructor(readonly link: WanLink) {
    this.client = new End(this, link.up);
    this.upstream = new End(this, link.down);
    this.client.peer = this.upstream;
    this.upstream.peer = this.client;
  }
}

/** What a paused sender still holds for the link: the rest of its last read, and markers after it. */
interface Pending {
  kind: Kind;
  data: Uint8Array | null;
}

/**
 * One direction of the link: the serialisation clock, the FIFO of what has not arrived, the senders waiting for
 * room in the bottleneck queue (served round-robin, one segment each), and one timer.
 */
class Lane {
  /** Bytes per ms. */
  private rate = 1;
  private delayMs = 0;
  limit = 0;
  /** Segment size: about 1 ms of link time, 4–64 KiB. */
  private seg = 4096;
  /** Time the link is free again (performance.now ms). */
  private free = 0;
  /** Arrival time of the last item pushed (arrivals never go backwards, even if the delay is changed). */
  private lastAt = 0;
  private readonly items: Item[] = [];
  private head = 0;
  private unarrived = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  /** Senders with bytes the full queue could not take yet (paused meanwhile), in round-robin order. */
  private readonly waiting: End[] = [];
  private bytesIn = 0;
  private peakQueued = 0;

  configure(s: Required<LinkSettings>): void {
    this.rate = (s.mbit * 1e6) / 8000;
    this.delayMs = s.rttMs / 2;
    this.limit = s.queueBytes;
    this.seg = Math.min(64 * 1024, Math.max(4096, Math.round(this.rate)));
  }

  /** Bytes waiting for link time at `now`. */
  queued(now: number): number {
    return Math.max(0, (this.free - now) * this.rate);
  }

  /**
   * Takes a chunk (or a FIN / reset marker) read `from` a sender, for its peer: into the bottleneck queue while it
   * has room, the rest held for the sender, which is paused until all of it is in.
   */
  push(from: End, kind: Kind, data: Uint8Array | null): void {
    if (data !== null) this.bytesIn += data.byteLength;
    from.pending.push({ kind, data });
    if (from.pending.length === 1) this.admit(from, performance.now(), Infinity);
    if (from.pending.length > 0 && !this.waiting.includes(from)) {
      this.waiting.push(from);
      from.hold("full", true);
    }
    this.schedule();
  }

  /** Moves up to `maxSegments` segments (markers are free) of `from`'s pending bytes into the queue while it has room. */
  private admit(from: End, now: number, maxSegments: number): void {
    let n = 0;
    while (from.pending.length > 0 && n < maxSegments) {
      const p = from.pending[0] as Pending;
      if (p.data === null) {
        from.pending.shift();
        this.append({ to: from.peer, kind: p.kind, data: null, at: Math.max(now, this.free) + this.delayMs });
        continue;
      }
      if (this.queued(now) >= this.limit) return;
      const part = p.data.byteLength <= this.seg ? p.data : p.data.subarray(0, this.seg);
      if (part === p.data) from.pending.shift();
      else p.data = p.data.subarray(this.seg);
      this.free = Math.max(now, this.free) + part.byteLength / this.rate;
      this.unarrived += part.byteLength;
      this.append({ to: from.peer, kind: Kind.Data, data: part, at: this.free + this.delayMs });
      this.peakQueued = Math.max(this.peakQueued, this.queued(now));
      n++;
    }
  }

  private append(item: Item): void {
    item.at = Math.max(item.at, this.lastAt);
    this.lastAt = item.at;
    this.items.push(item);
  }

  private schedule(): void {
    const head = this.items[this.head];
    // Room in the queue again: when it has drained below the limit.
    const room = this.waiting.length > 0 ? this.free - this.limit / this.rate : Infinity;
    const at = Math.min(head ? head.at : Infinity, room);
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(1, Math.ceil(at - performance.now())));
  }

  private fire(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = performance.now();
    while (this.head < this.items.length) {
      const item = this.items[this.head] as Item;
      if (item.at > now) break;
      this.items[this.head++] = undefined as unknown as Item;
      if (item.data !== null) this.unarrived -= item.data.byteLength;
      item.to.deliver(item);
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    // Round-robin, one segment per waiting sender per turn, while the queue has room.
    while (this.waiting.length > 0 && this.queued(now) < this.limit) {
      const e = this.waiting.shift() as End;
      this.admit(e, now, 1);
      if (e.pending.length > 0) this.waiting.push(e);
      else e.hold("full", false);
    }
    this.schedule();
  }

  stats(now: number): LaneStats {
    let held = 0;
    for (const e of this.waiting) for (const p of e.pending) held += p.data?.byteLength ?? 0;
    return {
      bytesIn: this.bytesIn,
      queuedBytes: Math.round(this.queued(now)),
      peakQueuedBytes: Math.round(this.peakQueued),
      unarrivedBytes: this.unarrived,
      waitingSenders: this.waiting.length,
      heldBytes: held,
    };
  }

  /** Nothing held, queued or on the wire. */
  get empty(): boolean {
    return this.head >= this.items.length && this.waiting.length === 0;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}

const handlers = {
  binaryType: "uint8array" as const,
  data(s: Socket<End>, chunk: Uint8Array) {
    s.data.lane.push(s.data, Kind.Data, chunk);
  },
  drain(s: Socket<End>) {
    s.data.flush();
  },
  end(s: Socket<End>) {
    s.data.sawEnd = true;
    s.data.lane.push(s.data, Kind.Fin, null);
  },
  close(s: Socket<End>, err?: Error) {
    const e = s.data;
    const wasClosed = e.closed;
    e.closed = true;
    e.conn.link.connClosed(e.conn);
    // Closed without a FIN from its peer (or with an error): the other side gets a reset, in order.
    if (!wasClosed && (err || !e.sawEnd) && !e.peer.closed) e.lane.push(e, Kind.Reset, null);
  },
  error() {},
};

/**
 * One emulated link (see the file comment). `listen` adds a port that forwards to a target through it; every
 * connection through every port shares the link. `configure` changes the settings for bytes taken from then on.
 */
export class WanLink {
  /** @internal From the connecting side towards the target. */
  readonly up = new Lane();
  /** @internal From the target back. */
  readonly down = new Lane();
  private settings: Required<LinkSettings>;
  private readonly listeners: TCPSocketListener<End>[] = [];
  private readonly conns = new Set<Conn>();

  constructor(settings: LinkSettings) {
    this.settings = this.configure(settings);
  }

  /** Applies new settings (queue limit defaulting to one BDP + slack); returns them complete. */
  configure(s: LinkSettings): Required<LinkSettings> {
    if (!(s.rttMs >= 0) || !(s.mbit > 0)) throw new Error(`bad link settings: rtt ${s.rttMs} ms, ${s.mbit} Mbit/s`);
    const full = { rttMs: s.rttMs, mbit: s.mbit, queueBytes: s.queueBytes ?? defaultQueueBytes(s) };
    this.up.configure(full);
    this.down.configure(full);
    this.settings = full;
    return full;
  }

  /** Listens on `host` port 0 (loopback by default) and forwards every connection to `targetPort`; returns the port. */
  listen(targetPort: number, targetHost = "127.0.0.1", host = "127.0.0.1"): number {
    const listener = Bun.listen<End>({
      hostname: host,
      port: 0,
      allowHalfOpen: true,
      socket: {
        ...handlers,
        open: (s) => this.accept(s, targetHost, targetPort),
      },
    });
    this.listeners.push(listener);
    return listener.port;
  }

  private accept(client: Socket<End>, targetHost: string, targetPort: number): void {
    const conn = new Conn(this);
    this.conns.add(conn);
    client.data = conn.client;
    conn.client.sock = client;
    client.setNoDelay(true);
    Bun.connect<End>({
      hostname: targetHost,
      port: targetPort,
      allowHalfOpen: true,
      data: conn.upstream,
      socket: {
        ...handlers,
        open(s) {
          const e = s.data;
          s.setNoDelay(true);
          e.sock = s;
          if (e.closed) return void s.terminate();
          if (e.holdFull || e.holdBacklog) s.pause();
          e.flush();
        },
        connectError() {
          conn.upstream.closed = true;
          client.terminate();
        },
      },
    }).catch(() => {
      conn.upstream.closed = true;
      client.terminate();
    });
  }

  /** @internal A connection's socket closed; the connection is forgotten once both are. */
  connClosed(c: Conn): void {
    if (c.client.closed && c.upstream.closed) this.conns.delete(c);
  }

  /** Counters and the current state of both directions. */
  stats(): LinkStats {
    const now = performance.now();
    let held = 0;
    for (const c of this.conns) held += c.client.backlogBytes + c.upstream.backlogBytes;
    return {
      settings: this.settings,
      connections: this.conns.size,
      up: this.up.stats(now),
      down: this.down.stats(now),
      idle: this.up.empty && this.down.empty && held === 0,
    };
  }

  /** Stops listening and resets every connection. */
  close(): void {
    for (const l of this.listeners) l.stop(true);
    for (const c of this.conns) {
      c.client.sock?.terminate();
      c.upstream.sock?.terminate();
    }
    this.up.stop();
    this.down.stop();
  }
}
