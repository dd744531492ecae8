/**
 * An in-memory connection for mux tests: two MemorySockets joined back to back. Each end is what a Session writes
 * to (FrameSocket) and what a Stream uses as its local socket (LocalSocket), and it reports the other end's bytes to
 * its SocketOwner the way a Bun socket does (bun-platform.md §1.2-1.7): later (setImmediate or a microtask), in
 * fresh buffers cut at seeded random sizes, with short writes once too much is in flight (`drain` follows),
 * pause/resume, half-close (FIN → `end`), end(), and terminate() (the other end sees ECONNRESET).
 */
import type { FrameSocket } from "../../src/mux/frame-writer.ts";
import type { LocalSocket } from "../../src/mux/stream.ts";
import type { SocketOwner } from "../../src/transport/tcp.ts";
import { Prng } from "./protocol-prng.ts";

/** How a memory connection behaves. Every field is optional. */
export interface MemoryOptions {
  /** Bytes one end may have written and not yet delivered; a write past that is short (`drain` follows). 64 KiB. */
  bufferBytes?: number;
  /** Bytes one write() takes at most even with room left (a short write; `drain` follows). Default: no cap. */
  maxWriteBytes?: number;
  /** Each `onData` chunk is seeded-random in minChunkBytes..maxChunkBytes (capped by what is in flight). 1 and 16 KiB. */
  minChunkBytes?: number;
  maxChunkBytes?: number;
  /** Seed of the chunk sizes (each end gets its own sequence). Default 1. */
  seed?: number;
  /** What defers a delivery: "immediate" (setImmediate, the default) or "microtask" (queueMicrotask). */
  defer?: "immediate" | "microtask";
}

type Settings = Required<MemoryOptions>;

const DEFAULTS: Settings = { bufferBytes: 64 * 1024, maxWriteBytes: Infinity, minChunkBytes: 1, maxChunkBytes: 16 * 1024, seed: 1, defer: "immediate" };

/** A peer reset, as Bun reports it (bun-platform.md §1.2). */
function resetError(): Error {
  return Object.assign(new Error("connection reset by peer"), { code: "ECONNRESET" });
}

/**
 * One end of a memory connection. Bytes written here are copied, then delivered to the other end's owner one chunk
 * per deferred turn while that end is not paused. write() returns what it took (0 when full, -1 once this end is
 * shut down or closed), like Bun's. As in Bun 1.4.5 (bun-platform.md §1.5), an end that shut down first sees the
 * other end's FIN only as a clean `close`, never as `end`. Events never fire synchronously inside a call.
 */
export class MemorySocket implements FrameSocket, LocalSocket {
  /** The other end. */
  peer!: MemorySocket;
  private owner: SocketOwner | null = null;
  /** Copies of what was written here and not yet delivered, oldest first; `headOffset` bytes of the first are gone. */
  private readonly outbox: Uint8Array[] = [];
  private headOffset = 0;
  /** Bytes written here, not yet delivered to the other end. */
  inFlight = 0;
  /** Bytes write() took. */
  bytesWritten = 0;
  /** Bytes handed to this end's owner. */
  bytesReceived = 0;
  /** The owner gets no `onData` (pause()). */
  paused = false;
  /** Times pause() paused this end. */
  pauses = 0;
  /** Called on every change of `paused` (after it changed). */
  onPauseChange: ((paused: boolean) => void) | null = null;
  /** A write came up short and `drain` is owed. */
  writeBlocked = false;
  /** shutdown() or end() was called: FIN follows the outbox. */
  finQueued = false;
  private finDelivered = false;
  /** The other end's FIN arrived. */
  gotFin = false;
  /** end() was called: close once the FIN is out. */
  private closeAfterFin = false;
  /** The connection is gone for this end (its owner's onClose has fired or is about to). */
  closed = false;
  /** The error this end was closed with (a reset), if any. */
  closeError: Error | undefined;
  /** Close reported to the owner (deferred), or waiting for an owner. */
  private closeNotified = false;
  private scheduled = false;
  private readonly tickBound = () => this.tick();

  constructor(
    private readonly settings: Settings,
    private readonly rng: Prng,
  ) {}

  /** Gives this end's events to `owner` from now on (anything held back for want of an owner follows later). */
  setOwner(owner: SocketOwner): void {
    this.owner = owner;
    if (this.closed) this.notifyClose();
    this.schedule();
    this.peer.schedule();
  }

  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    if (this.closed || this.finQueued) return -1;
    const room = Math.max(0, this.settings.bufferBytes - this.inFlight);
    const n = Math.min(byteLength, room, this.settings.maxWriteBytes);
    if (n > 0) {
      this.outbox.push(data.slice(byteOffset, byteOffset + n));
      this.inFlight += n;
      this.bytesWritten += n;
    }
    if (n < byteLength) this.writeBlocked = true;
    this.schedule();
    return n;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.pauses++;
    this.onPauseChange?.(true);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.onPauseChange?.(false);
    this.peer.schedule();
  }

  /** Half-close: FIN after what was written; this end keeps reading. */
  shutdown(): void {
    if (this.closed || this.finQueued) return;
    this.finQueued = true;
    this.schedule();
  }

  /** FIN after what was written, then this end is closed (cleanly). */
  end(): void {
    if (this.closed) return;
    this.closeAfterFin = true;
    this.finQueued = true;
    this.closeIfDone(); // the FIN may be out already
    this.schedule();
  }

  /** Reset: this end closes (no error), the other end closes with ECONNRESET; bytes in flight either way are lost. */
  terminate(): void {
    if (this.closed) return;
    this.close(undefined);
    if (!this.peer.closed) this.peer.close(resetError());
  }

  private close(error: Error | undefined): void {
    this.closed = true;
    this.closeError = error;
    this.outbox.length = 0;
    this.headOffset = 0;
    this.inFlight = 0;
    this.writeBlocked = false;
    this.notifyClose();
  }

  private notifyClose(): void {
    const owner = this.owner;
    if (owner === null || this.closeNotified) return;
    this.closeNotified = true;
    this.defer(() => owner.onClose(this.closeError));
  }

  private defer(fn: () => void): void {
    if (this.settings.defer === "microtask") queueMicrotask(fn);
    else setImmediate(fn);
  }

  /** Runs a delivery turn later unless one is pending. */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    this.defer(this.tickBound);
  }

  /** One turn of this end's direction: deliver one chunk (or the FIN) to the other end, then `drain` if owed. */
  private tick(): void {
    this.scheduled = false;
    if (this.closed) return;
    const peer = this.peer;
    const receiving = !peer.paused && peer.owner !== null;
    if (this.inFlight > 0 && peer.closed) {
      // Writing to an end that closed itself (end()): the kernel answers with RST.
      this.close(resetError());
      return;
    }
    if (this.inFlight > 0 && receiving) {
      const span = this.settings.maxChunkBytes - this.settings.minChunkBytes + 1;
      const chunk = this.take(Math.min(this.inFlight, this.settings.minChunkBytes + this.rng.int(span)));
      peer.bytesReceived += chunk.byteLength;
      peer.owner?.onData(chunk);
    } else if (this.inFlight === 0 && this.finQueued && !this.finDelivered && (receiving || peer.closed)) {
      this.deliverFin();
    }
    if (this.closed) return;
    if (this.writeBlocked && this.inFlight < this.settings.bufferBytes && !this.finQueued) {
      this.writeBlocked = false;
      this.owner?.onDrain();
    }
    const more = (this.inFlight > 0 || (this.finQueued && !this.finDelivered)) && (receiving || peer.closed);
    if (more) this.schedule();
  }

  private deliverFin(): void {
    this.finDelivered = true;
    const peer = this.peer;
    if (!peer.closed) {
      peer.gotFin = true;
      // Bun 1.4.5: an end that had shut down itself gets `close`, not `end` (bun-platform.md §1.5).
      if (!peer.finQueued) peer.owner?.onEnd();
      peer.closeIfDone();
    }
    this.closeIfDone();
  }

  /** Closes cleanly once this end's FIN is out and the other end's arrived (or end() did not wait for it). */
  private closeIfDone(): void {
    if (!this.closed && this.finDelivered && (this.gotFin || this.closeAfterFin)) this.close(undefined);
  }

  /** The next `n` bytes of the outbox as a fresh buffer of exactly that size (as Bun delivers reads). */
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.outbox[0] as Uint8Array;
      const k = Math.min(n - filled, head.byteLength - this.headOffset);
      out.set(head.subarray(this.headOffset, this.headOffset + k), filled);
      filled += k;
      this.headOffset += k;
      if (this.headOffset === head.byteLength) {
        this.outbox.shift();
        this.headOffset = 0;
      }
    }
    this.inFlight -= n;
    return out;
  }
}

/** Two connected memory ends. Each gets its own chunk-size sequence from `opts.seed`. */
export function memoryPair(opts: MemoryOptions = {}): [MemorySocket, MemorySocket] {
  const settings: Settings = { ...DEFAULTS, ...opts };
  const a = new MemorySocket(settings, new Prng(settings.seed));
  const b = new MemorySocket(settings, new Prng(settings.seed ^ 0x5bd1e995));
  a.peer = b;
  b.peer = a;
  return [a, b];
}
