/**
 * The write side of a session: frames are staged in one FrameEncoder and written once per event-loop turn
 * (setImmediate), or at once past the high-water mark; a short write waits for `drain`. It also bounds replies a
 * peer makes us stage while it does not read (control floods), and, once the session is closed, writes what is
 * left, half-closes and waits for the peer to close too.
 */
import { FrameEncoder } from "../protocol/frame-encoder.ts";

/** The part of a Bun socket a session writes to. */
export interface FrameSocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  shutdown(halfClose?: boolean): void;
  terminate(): void;
}

/** How long a closed session may take to write its last frames and see the peer close before it is reset. */
const LINGER_MS = 5_000;

/** Stages frames for one connection and writes them with backpressure. */
export class FrameWriter {
  /** Where frames are staged (callers append to it, then call schedule() or flushIfFull()). */
  readonly encoder = new FrameEncoder(64 * 1024);
  /** The socket accepted the last write whole (false until `drain` after a short write). */
  writable = true;
  /** Resolves when the connection itself is closed. */
  readonly gone: Promise<void>;
  private markGone!: () => void;
  private flushScheduled = false;
  /** No more flushes: the session is closed (what is staged goes out through linger()). */
  private stopped = false;
  private lingering: ReturnType<typeof setTimeout> | null = null;
  private finSent = false;
  /** Bytes of replies staged since the socket last accepted a write. */
  private replyBacklog = 0;
  private readonly flushBound = () => this.flush();

  constructor(
    private readonly socket: FrameSocket,
    private readonly highWater: number,
    private readonly replyLimit: number,
    /** Everything staged was written: blocked streams may send again. */
    private readonly onWritten: () => void,
    /** A peer made more than `replyLimit` bytes of replies pile up while not reading. */
    private readonly onFlood: () => void,
  ) {
    this.gone = new Promise((resolve) => (this.markGone = resolve));
  }

  /**
   * True while more DATA may be staged: the socket keeps up and the staging buffer is below `share` of the
   * high-water mark (1: all of it).
   */
  canAccept(share = 1): boolean {
    return this.writable && !this.stopped && this.encoder.pendingBytes < this.highWater * share;
  }

  /** Writes on the next event-loop turn (batches every frame staged until then into one write). */
  schedule(): void {
    if (this.flushScheduled || this.stopped) return;
    this.flushScheduled = true;
    setImmediate(this.flushBound);
  }

  /** After staging DATA: write now if the staging buffer reached the high-water mark, else on the next turn. */
  flushIfFull(): void {
    if (this.encoder.pendingBytes >= this.highWater) this.flush();
    else this.schedule();
  }

  /**
   * Before staging a reply the peer asked for (PONG, a refusal): replies staged while the socket accepts nothing
   * count against the limit. DATA and our own frames never count.
   */
  reply(bytes: number): void {
    if (!this.writable) {
      this.replyBacklog += bytes;
      if (this.replyBacklog > this.replyLimit) queueMicrotask(this.onFlood);
    }
    this.schedule();
  }

  /** Writes what is staged; on a short write waits for drained(). */
  flush(): void {
    this.flushScheduled = false;
    if (this.stopped || !this.writable) return;
    const enc = this.encoder;
    if (enc.pendingBytes > 0) {
      const n = this.socket.write(enc.pending());
      if (n > 0) {
        enc.consume(n);
        this.replyBacklog = 0;
      }
      if (enc.pendingBytes > 0) {
        if (n >= 0) this.writable = false;
        return;
      }
    }
    this.onWritten();
  }

  /** The socket can take more bytes. */
  drained(): void {
    this.writable = true;
    if (!this.stopped) {
      this.flush();
      return;
    }
    const enc = this.encoder;
    if (enc.pendingBytes > 0) {
      const n = this.socket.write(enc.pending());
      if (n > 0) enc.consume(n);
    }
    if (enc.pendingBytes === 0 && this.lingering !== null) this.halfClose();
  }

  /** The session is closed: no more flushes (the socket may already be gone). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * After the session closed cleanly or with a GOAWAY: write what is staged (a stream's last DATA and FIN), then
   * half-close and keep reading until the peer closes too. Not end(): Bun's end() closes the descriptor, and a
   * frame the peer sends meanwhile (a WINDOW, a PING) would be answered with RST, discarding what the kernel had
   * not sent yet. A peer that does not close in time is reset.
   */
  linger(): void {
    this.stopped = true;
    if (this.lingering !== null) return;
    this.lingering = setTimeout(() => this.socket.terminate(), LINGER_MS);
    if (this.encoder.pendingBytes === 0) this.halfClose();
  }

  /** The connection is gone. */
  socketClosed(): void {
    if (this.lingering !== null) clearTimeout(this.lingering);
    this.stopped = true;
    this.markGone();
  }

  private halfClose(): void {
    if (this.finSent) return;
    this.finSent = true;
    this.socket.shutdown();
  }
}
