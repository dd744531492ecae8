/**
 * The parties of a mux test: a Session on one end of a connection with its events recorded (SessionSide), a hostile
 * peer that writes raw frames and records every frame it gets (RawPeer), and the test's end of a stream's local
 * socket, which sends and verifies seeded bytes (LocalPeer, over a memory pair).
 */
import { Session } from "../../src/mux/session.ts";
import type { SessionEvents, SessionOptions } from "../../src/mux/session-options.ts";
import type { Stream } from "../../src/mux/stream.ts";
import type { TunnelError } from "../../src/errors.ts";
import type { SocketOwner } from "../../src/transport/tcp.ts";
import { FrameType } from "../../src/protocol/constants.ts";
import { memoryPair, type MemoryOptions, type MemorySocket } from "./memory-socket.ts";
import type { Conn } from "./mux-transports.ts";
import { PatternSource, PatternVerifier } from "./pattern.ts";
import { oracleEncode, type Ev } from "./protocol-frames.ts";
import { FrameReader, type RawFrame } from "./security-net.ts";
import { flushQueue, writeOrQueue } from "./write-queue.ts";
import { waitFor } from "./net.ts";

const KiB = 1024;

/** An OPEN payload for tests. */
export const OPEN = { service: "svc", visitorAddress: "127.0.0.1", visitorPort: 1, routeAddress: "127.0.0.1", routePort: 2 };

/** Session options for `role` with small windows and frames (16 KiB, the smallest legal max_frame) and no heartbeat. */
export function muxOptions(role: "server" | "agent", over: Partial<SessionOptions> = {}): SessionOptions {
  return {
    role, localWindow: 64 * KiB, peerWindow: 64 * KiB, localMaxFrame: 16 * KiB, peerMaxFrame: 16 * KiB,
    maxStreams: 1000, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0, highWaterBytes: 64 * KiB, ...over,
  };
}

/** A session on one end of a connection, with what it reported. */
export class SessionSide {
  readonly session: Session;
  /** Streams the peer opened (agent: every OPEN that reached onOpen). */
  readonly opened: Stream[] = [];
  readonly acked: Stream[] = [];
  /** Every onStreamEnd, in order. */
  readonly ends: { stream: Stream; code: number | null }[] = [];
  readonly goAways: number[] = [];
  rtts = 0;
  /** undefined while open; then null for a clean close, or the error. */
  closedWith: TunnelError | null | undefined = undefined;

  constructor(conn: Conn, opts: SessionOptions, onOpen?: (stream: Stream, side: SessionSide) => void) {
    const events: SessionEvents = {
      onOpen: (stream) => {
        this.opened.push(stream);
        onOpen?.(stream, this);
      },
      onAck: (stream) => void this.acked.push(stream),
      onStreamEnd: (stream, code) => void this.ends.push({ stream, code }),
      onGoAway: (code) => void this.goAways.push(code),
      onRtt: () => void this.rtts++,
      onClose: (error) => void (this.closedWith = error ?? null),
    };
    this.session = new Session(conn.socket, opts, events);
    conn.own(this.session);
  }

  /** End codes of `stream` (more than one would be a bug). */
  endsOf(stream: Stream): (number | null)[] {
    return this.ends.filter((e) => e.stream === stream).map((e) => e.code);
  }
}

/** The test's end of a stream's local socket (visitor or target): sends seeded bytes, verifies what it gets. */
export class LocalPeer implements SocketOwner {
  private readonly source: PatternSource;
  readonly verifier: PatternVerifier;
  private pending: Uint8Array | null = null;
  private toSend = 0;
  private finAfter = false;
  /** Bytes handed to the socket. */
  sent = 0;
  ended = false;
  closed = false;
  closeError: Error | undefined;

  constructor(readonly socket: MemorySocket, sendSeed: number, expectSeed: number, private readonly writeBytes = 16 * KiB) {
    this.source = new PatternSource(sendSeed);
    this.verifier = new PatternVerifier(expectSeed);
    socket.setOwner(this);
  }

  /** Sends `n` more seeded bytes with backpressure, then half-closes if `fin`. */
  send(n: number, fin = false): void {
    this.toSend += n;
    this.finAfter ||= fin;
    this.pump();
  }

  /** Half-closes now (after anything still queued). */
  finish(): void {
    this.send(0, true);
  }

  /** True once everything asked for was handed to the socket. */
  get done(): boolean {
    return this.pending === null && this.toSend === 0;
  }

  /** True if every byte arrived exactly and nothing more (`n` bytes in all). */
  got(n: number): boolean {
    return this.verifier.ok(n);
  }

  private pump(): void {
    for (;;) {
      if (this.pending === null) {
        if (this.toSend === 0) break;
        const n = Math.min(this.writeBytes, this.toSend);
        this.pending = this.source.next(n, true);
        this.toSend -= n;
      }
      const w = this.socket.write(this.pending);
      if (w < 0) return;
      this.sent += w;
      if (w < this.pending.byteLength) {
        this.pending = this.pending.subarray(w);
        return;
      }
      this.pending = null;
    }
    if (this.finAfter) this.socket.shutdown();
  }

  onData(chunk: Uint8Array): void {
    this.verifier.push(chunk);
  }
  onDrain(): void {
    this.pump();
  }
  onEnd(): void {
    this.ended = true;
  }
  onClose(error?: Error): void {
    this.closed = true;
    this.closeError = error;
  }
}

/**
 * A memory pair for a stream's local socket: `near` goes to the stream (its owner is set by {@link bindLocal}),
 * `peer` is the test's end. Short writes and small reads; deliveries on microtasks (connections use setImmediate),
 * so local and connection events interleave in orders a single kind of deferral would not produce.
 */
export function localPair(sendSeed: number, expectSeed: number, opts: MemoryOptions = {}): { near: MemorySocket; peer: LocalPeer } {
  const [near, far] = memoryPair({ bufferBytes: 32 * KiB, maxWriteBytes: 8 * KiB, maxChunkBytes: 12 * KiB, seed: sendSeed, defer: "microtask", ...opts });
  return { near, peer: new LocalPeer(far, sendSeed, expectSeed) };
}

/** Gives a stream its local socket's events (the stream is that socket's owner, as in the agent and the server). */
export function bindLocal(stream: Stream, near: MemorySocket): void {
  near.setOwner(stream);
}

/** A frame as a RawPeer saw it. */
export interface SeenFrame extends RawFrame {
  /** RST/GOAWAY code, WINDOW increment (undefined for other types). */
  code?: number;
  /** GOAWAY's last stream id. */
  last?: number;
}

function u32(payload: Uint8Array, offset: number): number {
  return new DataView(payload.buffer, payload.byteOffset).getUint32(offset);
}

/**
 * A hostile (or merely hand-driven) peer: writes raw frames (test/support/protocol-frames.ts), records every frame
 * the session sends except DATA payloads, which go to per-stream verifiers or are counted. Answers FIN with FIN
 * unless told not to.
 */
export class RawPeer implements SocketOwner {
  /** Every frame received, DATA with an empty payload (its length is in `dataBytes`). */
  readonly frames: SeenFrame[] = [];
  /** DATA payload bytes received, per stream. */
  readonly dataBytes = new Map<number, number>();
  private readonly sinks = new Map<number, PatternVerifier>();
  private readonly reader = new FrameReader();
  private readonly queue: Uint8Array[] = [];
  private pings = 0;
  /** Called for every frame after it was recorded. */
  onFrame: ((f: SeenFrame) => void) | null = null;
  closeOnEnd = true;
  ended = false;
  closed = false;
  closeError: Error | undefined;

  constructor(readonly conn: Conn) {
    conn.own(this);
  }

  /** Writes frames (queued behind earlier writes the socket did not take). */
  send(...evs: Ev[]): void {
    this.sendBytes(oracleEncode(evs));
  }

  sendBytes(bytes: Uint8Array): void {
    if (this.closed) return;
    writeOrQueue(this.conn.socket, this.queue, bytes);
  }

  /** Bytes written but not yet taken by the socket. */
  get queuedBytes(): number {
    return this.queue.reduce((n, b) => n + b.byteLength, 0);
  }

  /** Verifies stream `id`'s DATA against seed `seed` from now on. */
  expectData(id: number, seed: number): PatternVerifier {
    const v = new PatternVerifier(seed);
    this.sinks.set(id, v);
    return v;
  }

  /** Sends a PING and waits for its PONG: the session processed everything sent before, and answered it. */
  async sync(what = "PONG"): Promise<void> {
    const n = ++this.pings;
    const opaque = new Uint8Array(8);
    new DataView(opaque.buffer).setUint32(0, 0xc0ffee00 + n);
    this.send({ t: "ping", opaque });
    await waitFor(() => this.frames.some((f) => f.type === FrameType.PONG && u32(f.payload, 0) === 0xc0ffee00 + n), what);
  }

  /** The first frame of `type` (for stream `id` if given), waiting for it. */
  async next(type: number, id?: number, what = `frame type ${type}`): Promise<SeenFrame> {
    let found: SeenFrame | undefined;
    await waitFor(() => (found = this.find(type, id)) !== undefined, what);
    return found as SeenFrame;
  }

  find(type: number, id?: number): SeenFrame | undefined {
    return this.frames.find((f) => f.type === type && (id === undefined || f.streamId === id));
  }

  /** Frames of `type` (for stream `id` if given). */
  all(type: number, id?: number): SeenFrame[] {
    return this.frames.filter((f) => f.type === type && (id === undefined || f.streamId === id));
  }

  onData(chunk: Uint8Array): void {
    this.reader.push(chunk);
    for (const f of this.reader.frames) this.record(f);
    this.reader.frames.length = 0;
  }

  private record(f: RawFrame): void {
    const seen: SeenFrame = f.type === FrameType.DATA ? { ...f, payload: new Uint8Array(0) } : { ...f };
    if (f.type === FrameType.DATA) {
      this.dataBytes.set(f.streamId, (this.dataBytes.get(f.streamId) ?? 0) + f.payload.byteLength);
      this.sinks.get(f.streamId)?.push(f.payload);
    } else if (f.type === FrameType.RST || f.type === FrameType.WINDOW) {
      seen.code = u32(f.payload, 0);
    } else if (f.type === FrameType.GOAWAY) {
      seen.last = u32(f.payload, 0);
      seen.code = u32(f.payload, 4);
    }
    this.frames.push(seen);
    this.onFrame?.(seen);
  }

  onDrain(): void {
    flushQueue(this.conn.socket, this.queue);
  }
  onEnd(): void {
    this.ended = true;
    if (this.closeOnEnd) this.conn.socket.shutdown();
  }
  onClose(error?: Error): void {
    this.closed = true;
    this.closeError = error;
  }
}

/** A DATA event of `n` seeded bytes (copied), for {@link RawPeer.send}. */
export function dataEv(id: number, source: PatternSource, n: number): Ev {
  return { t: "data", id, bytes: source.next(n, true) };
}
