/**
 * The soak's target ("the edge service"), its own process, spawned by scripts/soak/cluster.ts with IPC. Each connection
 * starts with a 40-byte header (wire.ts); the target then, at the same time, writes `downBytes` of the `downSeed`
 * pattern (with backpressure, in `targetChunk` writes) and verifies the visitor's `upBytes` of the `upSeed` pattern
 * without storing it. It half-closes early (once its bytes are written) or late (after the visitor's FIN too), reads
 * slowly if asked, and resets the connection at `targetAbortAt` if asked.
 *
 * Reports over IPC: results of closed connections (batched every 100 ms) and, every 500 ms, the progress of every
 * open stream, which the soak's watchdog uses to tell a slow stream from a stuck one.
 */
import type { Socket } from "bun";
import { PatternSource, PatternVerifier } from "../../test/support/pattern.ts";
import { HEADER_BYTES, NEVER, decodeHeader, type StreamHeader, type TargetMessage, type TargetResult } from "./wire.ts";

/** A connection with no event for this long is reset and reported (`idleKilled`). */
const IDLE_KILL_MS = Number(process.env.SOAK_TARGET_IDLE_KILL_MS ?? 60_000);
const SLOW_EVERY_BYTES = 256 * 1024;

interface Conn {
  header: StreamHeader | null;
  headBuf: Uint8Array;
  headHave: number;
  source: PatternSource | null;
  verifier: PatternVerifier | null;
  pending: Uint8Array | null;
  downSent: number;
  upRecv: number;
  mismatchAt: number;
  eof: boolean;
  finSent: boolean;
  aborted: boolean;
  /** A write returned -1: the visitor's side was reset (Bun then reports a clean end and close). */
  writeFailed: boolean;
  closed: boolean;
  idleKilled: boolean;
  sinceSlow: number;
  slowTimer: ReturnType<typeof setTimeout> | null;
  openedAt: number;
  lastEventAt: number;
}

const conns = new Set<Socket<Conn>>();
let results: TargetResult[] = [];

function send(m: TargetMessage): void {
  process.send?.(m);
}

function maybeFin(s: Socket<Conn>): void {
  const c = s.data;
  const h = c.header;
  if (h === null || c.finSent || c.closed || c.pending !== null || c.downSent < h.downBytes) return;
  if (h.targetClose === "late" && !c.eof) return;
  c.finSent = true;
  // After the visitor's FIN, end() closes the socket; otherwise shutdown() half-closes and keeps reading.
  if (c.eof) s.end();
  else s.shutdown();
}

function pump(s: Socket<Conn>): void {
  const c = s.data;
  const h = c.header;
  if (h === null || c.closed || c.source === null) return;
  for (;;) {
    if (c.pending === null) {
      if (c.downSent >= h.downBytes) break;
      let n = Math.min(h.targetChunk, h.downBytes - c.downSent, 65_536);
      if (h.targetAbortAt !== NEVER && c.downSent < h.targetAbortAt) n = Math.min(n, h.targetAbortAt - c.downSent);
      c.pending = c.source.next(n);
    }
    if (h.targetAbortAt !== NEVER && c.downSent >= h.targetAbortAt) {
      c.aborted = true;
      s.terminate();
      return;
    }
    const w = s.write(c.pending);
    if (w < 0) {
      c.writeFailed = true;
      return;
    }
    if (w > 0) c.lastEventAt = Date.now();
    c.downSent += w;
    if (w < c.pending.byteLength) {
      c.pending = c.pending.subarray(w);
      return;
    }
    c.pending = null;
  }
  if (h.targetAbortAt !== NEVER && c.downSent >= h.targetAbortAt) {
    c.aborted = true;
    s.terminate();
    return;
  }
  maybeFin(s);
}

function verify(s: Socket<Conn>, chunk: Uint8Array): void {
  const c = s.data;
  const h = c.header as StreamHeader;
  const v = c.verifier as PatternVerifier;
  const room = h.upBytes - c.upRecv;
  c.upRecv += chunk.byteLength;
  if (chunk.byteLength > room) {
    // More bytes than the visitor said it would send: corruption from the first excess byte.
    if (c.mismatchAt < 0) c.mismatchAt = h.upBytes;
    chunk = chunk.subarray(0, Math.max(0, room));
  }
  if (chunk.byteLength > 0) v.push(chunk);
  if (v.firstMismatch >= 0 && (c.mismatchAt < 0 || v.firstMismatch < c.mismatchAt)) c.mismatchAt = v.firstMismatch;
  if (h.targetSlowMs > 0) {
    c.sinceSlow += chunk.byteLength;
    if (c.sinceSlow >= SLOW_EVERY_BYTES && c.slowTimer === null) {
      c.sinceSlow = 0;
      s.pause();
      c.slowTimer = setTimeout(() => {
        c.slowTimer = null;
        if (!c.closed) s.resume();
      }, h.targetSlowMs);
    }
  }
}

function finish(s: Socket<Conn>, error: string | null): void {
  const c = s.data;
  if (c.closed) return;
  c.closed = true;
  conns.delete(s);
  if (c.slowTimer !== null) clearTimeout(c.slowTimer);
  results.push({
    id: c.header?.streamId ?? -1,
    upRecv: c.upRecv,
    mismatchAt: c.mismatchAt,
    eof: c.eof,
    error,
    downSent: c.downSent,
    aborted: c.aborted,
    openedAt: c.openedAt,
    closedAt: Date.now(),
    idleKilled: c.idleKilled,
  });
}

const listener = Bun.listen<Conn>({
  hostname: "127.0.0.1",
  port: 0,
  allowHalfOpen: true,
  socket: {
    binaryType: "uint8array",
    open(s) {
      const now = Date.now();
      s.setNoDelay(true);
      s.data = {
        header: null,
        headBuf: new Uint8Array(HEADER_BYTES),
        headHave: 0,
        source: null,
        verifier: null,
        pending: null,
        downSent: 0,
        upRecv: 0,
        mismatchAt: -1,
        eof: false,
        finSent: false,
        aborted: false,
        writeFailed: false,
        closed: false,
        idleKilled: false,
        sinceSlow: 0,
        slowTimer: null,
        openedAt: now,
        lastEventAt: now,
      };
      conns.add(s);
    },
    data(s, chunk: Uint8Array) {
      const c = s.data;
      c.lastEventAt = Date.now();
      if (c.header === null) {
        const n = Math.min(HEADER_BYTES - c.headHave, chunk.byteLength);
        c.headBuf.set(chunk.subarray(0, n), c.headHave);
        c.headHave += n;
        chunk = chunk.subarray(n);
        if (c.headHave < HEADER_BYTES) return;
        const h = decodeHeader(c.headBuf);
        if (h === null) {
          c.mismatchAt = 0;
          s.terminate();
          return;
        }
        c.header = h;
        c.source = new PatternSource(h.downSeed);
        c.verifier = new PatternVerifier(h.upSeed);
        pump(s);
      }
      if (chunk.byteLength > 0) verify(s, chunk);
    },
    drain(s) {
      pump(s);
    },
    end(s) {
      const c = s.data;
      c.lastEventAt = Date.now();
      c.eof = true;
      maybeFin(s);
    },
    close(s, error?: Error) {
      const c = s.data;
      if (!error && !c.aborted && !c.idleKilled && !c.writeFailed) {
        // After our own shutdown() the visitor's FIN shows up only as a clean close (bun-platform.md §1.5).
        c.eof = true;
      }
      if (c.writeFailed) c.eof = false;
      const code = error ? String((error as Error & { code?: string }).code ?? error.message) : c.writeFailed ? "write failed (reset)" : null;
      finish(s, c.aborted ? "aborted" : c.idleKilled ? "idle-killed" : code);
    },
    error() {},
  },
});

setInterval(() => {
  if (results.length > 0) {
    send({ type: "results", results });
    results = [];
  }
}, 100);

setInterval(() => {
  const now = Date.now();
  const open: [number, number, number, number][] = [];
  for (const s of conns) {
    const c = s.data;
    if (now - c.lastEventAt > IDLE_KILL_MS && !c.idleKilled) {
      c.idleKilled = true;
      s.terminate();
      continue;
    }
    open.push([c.header?.streamId ?? -1, c.upRecv, c.downSent, c.lastEventAt]);
  }
  send({ type: "progress", at: now, open, active: conns.size });
}, 500);

send({ type: "ready", port: listener.port });
process.on("message", (m: { type?: string }) => {
  if (m?.type !== "gc") return;
  Bun.gc(true);
  send({ type: "gc-done" });
});
process.on("disconnect", () => process.exit(0));
