/**
 * Two sockets joined into one byte pipe, as MOSN's raw tunnel connections carry traffic (SPEC.md §7): every byte
 * read on one side is written to the other, untouched and in order. Backpressure: a side whose bytes the other
 * cannot take yet is paused until that one drains. A FIN is passed on as a half-close once the bytes before it are
 * written; the splice ends when both directions have ended, or at once when either socket fails.
 */
import type { NetSocket, SocketOwner } from "./tcp.ts";

/** How a splice ended: `fin` both directions ended cleanly; `closed` a side closed first; `error` a side failed. */
export type SpliceEnd = "fin" | "closed" | "error";

/** What a finished splice reports. */
export interface SpliceResult {
  readonly how: SpliceEnd;
  /** Bytes read from `a` and written to `b`, and the reverse. */
  readonly aToB: number;
  readonly bToA: number;
}

/** One side: owns its socket's events and holds the bytes waiting to be written to it. */
class Side implements SocketOwner {
  other!: Side;
  /** Bytes read from the other side that this socket has not taken yet, oldest first. */
  readonly queue: Uint8Array[] = [];
  /** This socket sent FIN (or closed cleanly): it sends no more. */
  eof = false;
  /** We half-closed this socket's sending side (the other side's FIN, passed on). */
  shut = false;
  closed = false;
  paused = false;
  bytesRead = 0;

  constructor(
    readonly socket: NetSocket,
    private readonly splice: Splice,
  ) {}

  onData(chunk: Uint8Array): void {
    if (this.splice.done) return;
    this.bytesRead += chunk.byteLength;
    this.other.write(chunk);
  }

  onDrain(): void {
    if (this.splice.done) return;
    this.flush();
  }

  onEnd(): void {
    if (this.splice.done) return;
    this.eof = true;
    this.other.passFin();
    this.splice.check();
  }

  onClose(error?: Error): void {
    this.closed = true;
    if (this.splice.done) return;
    if (error) return this.splice.finish("error");
    // A clean close is EOF (after our own shutdown() Bun reports the peer's FIN only as close): the bytes it sent
    // that the other socket has not taken yet still go out before the splice ends.
    this.eof = true;
    this.other.passFin();
    this.splice.check();
  }

  /** Writes (or queues) bytes for this socket; pauses the other side while any wait. */
  write(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.queue.length === 0) {
      const n = this.socket.write(chunk);
      if (n >= chunk.byteLength) return;
      this.queue.push(chunk.subarray(Math.max(0, n)));
    } else {
      this.queue.push(chunk);
    }
    if (!this.other.paused && !this.other.closed) {
      this.other.paused = true;
      this.other.socket.pause();
    }
  }

  /** Writes queued bytes; once all are out, resumes the other side and passes on its FIN. */
  flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0] as Uint8Array;
      const n = this.socket.write(head);
      if (n < head.byteLength) {
        this.queue[0] = head.subarray(Math.max(0, n));
        return;
      }
      this.queue.shift();
    }
    if (this.other.paused && !this.other.closed) {
      this.other.paused = false;
      this.other.socket.resume();
    }
    if (this.other.eof) this.passFin();
    this.splice.check();
  }

  /** The other side ended: half-close this socket once the bytes before the FIN are written. */
  passFin(): void {
    if (this.shut || this.closed || this.queue.length > 0) return;
    this.shut = true;
    this.socket.shutdown();
  }
}

/**
 * A splice of sockets `a` and `b`. The caller makes `a`'s and `b`'s owners the splice's sides ({@link Splice.a},
 * {@link Splice.b}) and may pass bytes already read from either (`toA`: written to `a` first, e.g. bytes that came
 * behind a handshake). `onDone` is called once, after both sockets were closed or told to close.
 */
export class Splice {
  readonly a: SocketOwner;
  readonly b: SocketOwner;
  done = false;
  private readonly sa: Side;
  private readonly sb: Side;

  constructor(
    a: NetSocket,
    b: NetSocket,
    private readonly onDone: (result: SpliceResult) => void,
    first: { toA?: readonly Uint8Array[]; toB?: readonly Uint8Array[] } = {},
  ) {
    this.sa = new Side(a, this);
    this.sb = new Side(b, this);
    this.sa.other = this.sb;
    this.sb.other = this.sa;
    this.a = this.sa;
    this.b = this.sb;
    for (const c of first.toA ?? []) if (c.byteLength > 0) this.sa.write(c);
    for (const c of first.toB ?? []) if (c.byteLength > 0) this.sb.write(c);
  }

  /** Bytes moved so far: read from `a` (toward `b`) and from `b` (toward `a`). */
  get aToB(): number {
    return this.sa.bytesRead;
  }

  get bToA(): number {
    return this.sb.bytesRead;
  }

  /** Ends the splice at once: both sockets are closed (`terminate` resets them, else FIN). */
  close(terminate = false): void {
    this.finish(terminate ? "error" : "closed");
  }

  /** Done when both directions ended and every byte was written, or a side closed and the other took its bytes. */
  check(): void {
    const { sa, sb } = this;
    if (sa.closed || sb.closed) {
      const open = sa.closed ? sb : sa;
      if (open.closed || open.queue.length === 0) this.finish("closed");
      return;
    }
    if (sa.eof && sb.eof && sa.shut && sb.shut) this.finish("fin");
  }

  /** Ends the splice once: sockets still open are ended (FIN) or, after a failure, reset. */
  finish(how: SpliceEnd): void {
    if (this.done) return;
    this.done = true;
    for (const s of [this.sa, this.sb]) {
      if (s.closed) continue;
      // Bytes a closed side sent that this socket has not taken yet would be lost by a reset: FIN keeps them only
      // if Bun wrote them, so a queue left over means the pipe broke either way.
      if (how === "error" || s.queue.length > 0) s.socket.terminate();
      else s.socket.end();
    }
    this.onDone({ how, aToB: this.sa.bytesRead, bToA: this.sb.bytesRead });
  }
}
