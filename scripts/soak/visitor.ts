/**
 * The soak's visitors: each opens streams of random shape one after another through a random server, sends its
 * seeded bytes up, verifies the bytes that come down without storing them, half-closes early or late, reads slowly
 * or resets on purpose if the stream says so. Sizes are log-uniform over 0 B–16 MiB, so most streams are small.
 */
import type { Socket, SocketHandler } from "bun";
import { PatternSource, PatternVerifier } from "../../test/support/pattern.ts";
import { sleep, type Soak, type StreamRec } from "./state.ts";
import { onVisitorOpen } from "./streams.ts";
import { NEVER, encodeHeader, type StreamHeader } from "./wire.ts";
import { udpLoops } from "./udp.ts";

const MAX_STREAM_BYTES = 16 * 1024 * 1024;
/** A slow reader pauses after every this many bytes. */
const SLOW_EVERY_BYTES = 256 * 1024;

/** Log-uniform over 1 B–16 MiB (so most streams are small), 5% empty. */
function drawSize(s: Soak): number {
  if (s.rng.next() < 0.05) return 0;
  return Math.min(MAX_STREAM_BYTES, Math.floor(2 ** (s.rng.next() * 24)));
}

/** A slow reader's pause per 256 KiB, capped so that no stream spends more than ~3 s paused. */
function drawSlow(s: Soak, bytes: number): number {
  if (s.rng.next() >= 0.1 || bytes < SLOW_EVERY_BYTES) return 0;
  const pauses = Math.ceil(bytes / SLOW_EVERY_BYTES);
  return Math.max(10, Math.min(s.rng.range(50, 250), Math.floor(3000 / pauses)));
}

function drawHeader(s: Soak, id: number): { h: StreamHeader; visitorAbort: boolean } {
  const rng = s.rng;
  const upBytes = drawSize(s);
  const downBytes = drawSize(s);
  const targetAbort = downBytes > 0 && rng.next() < 0.03;
  const visitorAbort = !targetAbort && upBytes + downBytes > 0 && rng.next() < 0.03;
  const h: StreamHeader = {
    streamId: id,
    upSeed: (rng.next() * 0xffffffff) >>> 0,
    upBytes,
    downSeed: (rng.next() * 0xffffffff) >>> 0,
    downBytes,
    targetClose: rng.next() < 0.5 ? "early" : "late",
    targetSlowMs: drawSlow(s, upBytes),
    targetAbortAt: targetAbort ? rng.int(downBytes) : NEVER,
    targetChunk: Math.floor(2 ** (10 + rng.next() * 6)),
  };
  return { h, visitorAbort };
}

/** Draws a new stream and adds it to the open streams. */
export function newStream(s: Soak): StreamRec {
  const rng = s.rng;
  const id = s.streams.nextId++;
  const { h, visitorAbort } = drawHeader(s, id);
  const now = Date.now();
  const rec: StreamRec = {
    id,
    server: rng.int(s.servers.length),
    h,
    visitorClose: rng.next() < 0.5 ? "early" : "late",
    visitorAbortAfter: visitorAbort ? rng.int(h.upBytes + h.downBytes) : NEVER,
    visitorSlowMs: drawSlow(s, h.downBytes),
    chunk: Math.floor(2 ** (10 + rng.next() * 8)),
    startedAt: now,
    openedAt: 0,
    localPort: 0,
    sock: null,
    header: encodeHeader(h),
    source: new PatternSource(h.upSeed),
    verifier: new PatternVerifier(h.downSeed),
    pending: null,
    upSent: 0,
    downRecv: 0,
    mismatchAt: -1,
    eof: false,
    finSent: false,
    aborted: false,
    writeFailed: false,
    closedAt: 0,
    closeError: null,
    connectError: null,
    sinceSlow: 0,
    slowTimer: null,
    lastProgressAt: now,
    targetProgressAt: 0,
    targetUp: 0,
    targetDown: 0,
    targetOpen: false,
    target: null,
    access: null,
    accessByTime: false,
    hang: false,
    hangKilled: false,
    done: () => {},
  };
  s.streams.totals.started++;
  s.streams.open.set(id, rec);
  return rec;
}

function visitorAbortDue(r: StreamRec): boolean {
  return r.visitorAbortAfter !== NEVER && r.upSent + r.downRecv >= r.visitorAbortAfter;
}

function abortVisitor(sock: Socket<StreamRec>): void {
  sock.data.aborted = true;
  sock.terminate();
}

/** Writes the header, then the up bytes, until the socket pushes back; then FIN if due. */
function pumpVisitor(sock: Socket<StreamRec>): void {
  const r = sock.data;
  if (r.closedAt !== 0 || r.aborted) return;
  for (;;) {
    if (visitorAbortDue(r)) return abortVisitor(sock);
    if (r.pending === null) {
      if (r.header !== null) {
        r.pending = r.header;
        r.header = null;
      } else {
        if (r.upSent >= r.h.upBytes) break;
        let n = Math.min(r.chunk, r.h.upBytes - r.upSent, 65_536);
        if (r.visitorAbortAfter !== NEVER) n = Math.max(1, Math.min(n, r.visitorAbortAfter - r.upSent - r.downRecv));
        r.pending = r.source.next(n);
        r.upSent += n; // counted when produced; `pending` is what is still unwritten
      }
    }
    const w = sock.write(r.pending);
    if (w < 0) {
      r.writeFailed = true;
      return;
    }
    if (w > 0) r.lastProgressAt = Date.now();
    if (w < r.pending.byteLength) {
      r.pending = r.pending.subarray(w);
      return;
    }
    r.pending = null;
  }
  maybeFinVisitor(sock);
}

/** Sends FIN once everything is written and, for a "late" close, everything was received. */
function maybeFinVisitor(sock: Socket<StreamRec>): void {
  const r = sock.data;
  if (r.finSent || r.closedAt !== 0 || r.aborted || r.pending !== null || r.header !== null || r.upSent < r.h.upBytes) return;
  if (r.visitorClose === "late" && r.downRecv < r.h.downBytes) return;
  r.finSent = true;
  if (r.eof) sock.end();
  else sock.shutdown();
}

/** Verifies received bytes (those past downBytes count as a mismatch) and paces a slow reader. */
function onVisitorData(sock: Socket<StreamRec>, chunk: Uint8Array): void {
  const r = sock.data;
  r.lastProgressAt = Date.now();
  const room = r.h.downBytes - r.downRecv;
  r.downRecv += chunk.byteLength;
  if (chunk.byteLength > room && r.mismatchAt < 0) r.mismatchAt = r.h.downBytes;
  const mine = chunk.byteLength > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
  if (mine.byteLength > 0) r.verifier.push(mine);
  if (r.verifier.firstMismatch >= 0 && (r.mismatchAt < 0 || r.verifier.firstMismatch < r.mismatchAt)) {
    r.mismatchAt = r.verifier.firstMismatch;
  }
  if (visitorAbortDue(r)) return abortVisitor(sock);
  if (r.visitorSlowMs > 0) {
    r.sinceSlow += chunk.byteLength;
    if (r.sinceSlow >= SLOW_EVERY_BYTES && r.slowTimer === null) {
      r.sinceSlow = 0;
      sock.pause();
      r.slowTimer = setTimeout(() => {
        r.slowTimer = null;
        if (r.closedAt === 0) {
          r.lastProgressAt = Date.now();
          sock.resume();
        }
      }, r.visitorSlowMs);
    }
  }
  maybeFinVisitor(sock);
}

const errorCode = (e: unknown) => String((e as Error & { code?: string }).code ?? (e as Error).message);

function visitorHandler(s: Soak): SocketHandler<StreamRec> {
  return {
    binaryType: "uint8array",
    open(sock) {
      const r = sock.data;
      r.openedAt = Date.now();
      r.lastProgressAt = r.openedAt;
      r.localPort = sock.localPort;
      r.sock = sock;
      onVisitorOpen(s, r);
      pumpVisitor(sock);
    },
    data: onVisitorData,
    drain: pumpVisitor,
    end(sock) {
      const r = sock.data;
      r.lastProgressAt = Date.now();
      r.eof = true;
      if (r.finSent || r.downRecv < r.h.downBytes) sock.end(); // done, or the peer ended early: nothing more to wait for
      else maybeFinVisitor(sock);
    },
    close(sock, error?: Error) {
      const r = sock.data;
      r.closedAt = Date.now();
      if (r.slowTimer !== null) clearTimeout(r.slowTimer);
      r.closeError = error ? errorCode(error) : r.writeFailed ? "write failed (reset)" : null;
      // After our own shutdown() the peer's FIN shows up only as a clean close (bun-platform.md §1.5).
      if (!error && !r.aborted && !r.writeFailed) r.eof = true;
      if (r.writeFailed) r.eof = false;
      r.done();
    },
    connectError(sock, error: Error) {
      const r = sock.data;
      r.closedAt = Date.now();
      r.connectError = errorCode(error);
      r.done();
    },
    error() {},
  };
}

/** Runs one visitor stream; resolves when its socket closed (or its connect failed). */
function runVisitor(s: Soak, r: StreamRec): Promise<void> {
  return new Promise<void>((resolve) => {
    let resolved = false;
    r.done = () => {
      if (resolved) return;
      resolved = true;
      resolve();
    };
    Bun.connect<StreamRec>({
      hostname: "127.0.0.1",
      port: s.servers[r.server]?.routePort ?? 0,
      allowHalfOpen: true,
      data: r,
      socket: visitorHandler(s),
    }).catch((e: unknown) => {
      if (r.closedAt !== 0) return;
      r.closedAt = Date.now();
      r.connectError = errorCode(e);
      r.done();
    });
  });
}

/** One visitor: streams one after another while the load phase lasts. */
async function visitorLoop(s: Soak): Promise<void> {
  while (s.load.phase === "load") {
    const r = newStream(s);
    await runVisitor(s, r);
    if (r.connectError !== null || (r.downRecv === 0 && r.closedAt - r.startedAt < 50)) await sleep(50);
  }
}

/** Starts a load phase: `--visitors` visitor loops, and the UDP visitors (udp.ts). */
export function startLoad(s: Soak): void {
  s.load.phase = "load";
  s.load.gen++;
  s.load.loops = [...Array.from({ length: s.opts.visitors }, () => visitorLoop(s)), ...udpLoops(s)];
}
