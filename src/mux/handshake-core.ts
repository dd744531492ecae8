/**
 * What both roles' handshake owners share (SPEC.md §1): a socket owner from connect/accept until one handshake frame
 * arrived, with the decoder, one deadline, and a single settle; the role decides what the frame means and how to
 * fail (server/handshake.ts, agent/handshake.ts). States: `waiting` until the deadline is armed
 * (agent: until its InitInfo is written), `reading` while a frame may arrive, `settled` once it arrived or failed.
 */
import { HandshakeDecoder, type HandshakeMessage } from "../protocol/handshake.ts";
import type { HandshakeFlag } from "../protocol/constants.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import { TunnelError } from "../errors.ts";

/** A handshake owner's state (see the file header). */
export type HandshakeState = "waiting" | "reading" | "settled";

/** How a handshake failed: a frame that did not decode, a lost connection (deadline, FIN), or a socket already gone. */
export type HandshakeFailure = "malformed" | "lost" | "gone";

/** The frame of flag `F`. */
export type FrameOf<F extends HandshakeFlag> = Extract<HandshakeMessage, { flag: F }>;

/** Owns a socket until one handshake frame with a flag of `F` arrived. Subclasses say what it means and how to fail. */
export abstract class HandshakeCore<F extends HandshakeFlag> implements SocketOwner {
  state: HandshakeState = "waiting";
  private readonly decoder: HandshakeDecoder;
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** `flags`: the frames accepted here (others are malformed); `maxBodyBytes`: the body limit (default 16 KiB). */
  constructor(flags: F | readonly F[], maxBodyBytes?: number) {
    const accept: readonly number[] = typeof flags === "number" ? [flags] : flags;
    this.decoder = new HandshakeDecoder({ accept, ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }) });
  }

  /** Starts the deadline: after `timeoutMs` without a frame, the handshake fails with ERR_HANDSHAKE_TIMEOUT. */
  protected arm(timeoutMs: number): void {
    if (this.state !== "waiting") return;
    this.state = "reading";
    this.timer = setTimeout(() => this.fail(new TunnelError("ERR_HANDSHAKE_TIMEOUT"), "lost"), timeoutMs);
  }

  onData(chunk: Uint8Array): void {
    if (this.state !== "reading" || !this.mayRead()) return;
    const r = this.decoder.push(chunk);
    if (r.kind === "more") return;
    if (r.kind === "error") return this.fail(r.error, "malformed");
    this.settle();
    this.received(r.message as FrameOf<F>, r.rest);
  }

  onDrain(): void {}

  onEnd(): void {
    this.fail(new TunnelError("ERR_HANDSHAKE_CLOSED"), "lost");
  }

  /** The connection is gone; a TunnelError from the transport (a WebSocket violation) is the reason given. */
  onClose(error?: Error): void {
    this.fail(error instanceof TunnelError ? error : new TunnelError("ERR_HANDSHAKE_CLOSED"), "gone");
  }

  /** Fails the handshake once (later calls do nothing): settles, then tells the role. */
  protected fail(error: TunnelError, how: HandshakeFailure): void {
    if (this.state === "settled") return;
    this.settle();
    this.failed(error, how);
  }

  /** Ends the handshake phase (the deadline stops); `settled` runs once. */
  protected settle(): void {
    this.state = "settled";
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.settled();
  }

  /** Whether a chunk may be decoded now (a role may fail the handshake instead and return false). */
  protected mayRead(): boolean {
    return true;
  }

  /** Called once when the handshake phase ends, either way, before `received` or `failed`. */
  protected settled(): void {}

  /** The frame arrived (already settled); `rest` is what followed it in the same chunk (stream frames). */
  protected abstract received(message: FrameOf<F>, rest: Uint8Array): void;

  /** The handshake failed (already settled); the role closes the socket as `how` requires and reports it. */
  protected abstract failed(error: TunnelError, how: HandshakeFailure): void;
}
