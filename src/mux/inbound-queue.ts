/**
 * The bytes the peer sent on one stream that its local socket has not taken yet (a Stream's `inQueue`), oldest first,
 * and the tally of such bytes per session and per process that an agent's inbound budgets are checked against.
 */

import { chunkViews } from "../transport/read-buffer.ts";
/** Queued views at least this long (and at least a quarter of their chunk) are kept; smaller ones are copied. */
const KEEP_VIEW_MIN_BYTES = 16 * 1024;
/** Size of the buffer small queued payloads are copied into. */
const TAIL_BYTES = 64 * 1024;
/** First tail buffer of a backlog. */
const TAIL_MIN_BYTES = 4 * 1024;

/** The process-wide counts behind InboundTallies, one per role (a test process runs both). */
export const processInboundOf = { agent: { bytes: 0 }, server: { bytes: 0 } };
/** The agents' process-wide count. */
export const processInbound = processInboundOf.agent;

/**
 * Peer bytes a session holds or may be sent for its streams' local sockets (SPEC.md §2.2, inbound budget): bytes
 * queued on attached streams, the whole opening window of each stream whose local socket is not attached yet (the
 * peer may fill it whatever we do), and how far adaptive windows grew above the base window. Counted into
 * `process` (one of {@link processInboundOf}) too, when given.
 */
export class InboundTally {
  bytes = 0;

  constructor(
    readonly process: { bytes: number } | null,
    /** The budgets (TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION, TUNNEL_INBOUND_MAX_BYTES); Infinity: none. */
    private readonly perConnection = Infinity,
    private readonly perProcess = Infinity,
  ) {}

  /** Whether `n` more bytes fit both budgets. */
  fits(n: number): boolean {
    return this.bytes + n <= this.perConnection && (this.process?.bytes ?? 0) + n <= this.perProcess;
  }

  /** Adds `n` bytes (negative: releases them). */
  charge(n: number): void {
    this.bytes += n;
    if (this.process !== null) this.process.bytes += n;
  }
}

/**
 * Peer bytes waiting for a stream's local socket. A view pins its whole received chunk (up to 512 KiB), so only
 * views that are a large part of their chunk are kept; smaller ones are copied into a shared tail buffer. Memory held
 * is then at most about 4× the window plus one tail buffer, whatever frame sizes the peer picks. Never throws.
 */
export class InboundQueue {
  /**
   * Count of views of received chunks kept by any queue, ever. A session compares it before and after decoding a
   * chunk: unchanged means nothing holds a view of that chunk, so its memory can be released at once.
   */
  static get keptViews(): number {
    return chunkViews.kept;
  }
  /** Queued views (of received chunks or of the tail buffer), oldest first. */
  private views: Uint8Array[] = [];
  /** Buffer that small queued payloads are copied into (see push), and how much of it is used. */
  private tail: Uint8Array | null = null;
  private tailUsed = 0;
  /** Bytes held, in all queued views. */
  bytes = 0;
  /** Where changes of `bytes` are counted, once set (see countInto). */
  private tally: InboundTally | null = null;

  /** Number of queued views (0 when nothing waits). */
  get length(): number {
    return this.views.length;
  }

  /** From now on, counts the bytes held (already and later) into `tally`. */
  countInto(tally: InboundTally): void {
    this.tally = tally;
    tally.charge(this.bytes);
  }

  /** Queues peer bytes: `payload` (a view of a received chunk) is either kept as is or copied (see the class). */
  push(payload: Uint8Array): void {
    const len = payload.byteLength;
    this.held(len);
    const q = this.views;
    if (len >= KEEP_VIEW_MIN_BYTES && len * 4 >= payload.buffer.byteLength) {
      q.push(payload);
      this.tail = null;
      chunkViews.kept++;
      return;
    }
    let tail = this.tail;
    if (tail === null || this.tailUsed + len > tail.byteLength) {
      // Start small (usually one early write before the target is connected) and double up to TAIL_BYTES.
      tail = new Uint8Array(Math.max(len, Math.min(TAIL_BYTES, 2 * (tail?.byteLength ?? TAIL_MIN_BYTES / 2))));
      this.tail = tail;
      this.tailUsed = 0;
    }
    tail.set(payload, this.tailUsed);
    const last = q[q.length - 1];
    if (last !== undefined && last.buffer === tail.buffer && last.byteOffset + last.byteLength === this.tailUsed) {
      q[q.length - 1] = tail.subarray(last.byteOffset, this.tailUsed + len); // grow the last entry in place
    } else {
      q.push(tail.subarray(this.tailUsed, this.tailUsed + len));
    }
    this.tailUsed += len;
  }

  /** The oldest view; only while length > 0. */
  head(): Uint8Array {
    return this.views[0] as Uint8Array;
  }

  /** The local socket took part of the oldest view: `rest` (its unwritten end) stays in front. */
  replaceHead(rest: Uint8Array): void {
    this.held(rest.byteLength - (this.views[0] as Uint8Array).byteLength);
    this.views[0] = rest;
  }

  /** The local socket took all of the oldest view. */
  shift(): void {
    this.held(-(this.views.shift() as Uint8Array).byteLength);
  }

  /** Nothing queued refers to the tail buffer any more: let it go (an idle stream holds no buffer). */
  releaseTail(): void {
    this.tail = null;
    this.tailUsed = 0;
  }

  /** Drops everything queued (the stream ended). */
  clear(): void {
    this.held(-this.bytes);
    this.views = [];
    this.tail = null;
  }

  private held(n: number): void {
    this.bytes += n;
    this.tally?.charge(n);
  }
}
