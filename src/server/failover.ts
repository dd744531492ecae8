/**
 * Failover per visitor (SPEC §2.2, "Refusal before ACK"): until the agent's ACK, a visitor's stream keeps copies of
 * the bytes it sent (up to a cap), so that when the agent refuses the stream with a code that means it took nothing,
 * the visitor goes on to another agent with every byte replayed.
 */
import { WireCode } from "../protocol/constants.ts";
import type { OpeningWatcher, Stream } from "../mux/stream.ts";
import type { SocketSlot } from "../transport/tcp.ts";

/** Visitor bytes kept for a replay at most; a visitor that sent more before the refusal is reset instead. */
export const REPLAY_MAX_BYTES = 64 * 1024;

const RETRYABLE: ReadonlySet<number> = new Set<number>([
  WireCode.REFUSED_STREAM,
  WireCode.UNKNOWN_SERVICE,
  WireCode.CONNECT_REFUSED,
  WireCode.CONNECT_TIMEOUT,
  WireCode.SHUTTING_DOWN,
]);

/** True for the RST codes with which an agent says it took no byte of the stream (only meaningful before ACK). */
export function isRefusal(code: number): boolean {
  return RETRYABLE.has(code);
}

/** Copies of the bytes a stream sent, in order, while they fit in {@link REPLAY_MAX_BYTES}. Never throws. */
export class ReplayBuffer {
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;

  /** Keeps a copy of `src[0 .. n)`. Returns false (and keeps nothing more) once the cap would be passed. */
  keep(src: Uint8Array, n: number): boolean {
    if (this.bytes + n > REPLAY_MAX_BYTES) return false;
    this.chunks.push(src.slice(0, n));
    this.bytes += n;
    return true;
  }

  /** The kept copies, oldest first (the caller owns them). */
  take(): Uint8Array[] {
    return this.chunks.splice(0);
  }
}

/**
 * Watches one visitor's stream until the agent's ACK (Stream.watchOpening). On a refusal it asks `openNext` for a
 * stream on another agent and, if one is given, moves the visitor socket there: the refused stream is handed off,
 * the socket's owner becomes the new stream, and what the visitor sent so far (kept copies, then unsent bytes) and
 * its FIN are replayed into it. A visitor that sent more than REPLAY_MAX_BYTES before the refusal is not moved.
 */
export class VisitorFailover implements OpeningWatcher {
  private replay: ReplayBuffer | null = new ReplayBuffer();

  constructor(
    private readonly socket: { data: SocketSlot },
    private readonly stream: Stream,
    /** Opens a stream for this visitor on another agent after a refusal with `code`; null if there is none. */
    private readonly openNext: (code: number) => Stream | null,
  ) {}

  sent(chunk: Uint8Array, n: number): void {
    if (this.replay !== null && !this.replay.keep(chunk, n)) this.replay = null;
  }

  refused(code: number): boolean {
    const replay = this.replay;
    if (replay === null || !isRefusal(code)) return false;
    const next = this.openNext(code);
    if (next === null) return false;
    this.replay = null;
    const chunks = replay.take();
    const { unsent, eof } = this.stream.handOff(code);
    if (unsent !== null) chunks.push(unsent);
    this.socket.data.owner = next;
    // The refused stream may have paused the visitor, and the new one may have paused it when it was opened (its
    // connection over its read budget): give the socket the new stream's state before the replay.
    next.syncReading();
    for (const c of chunks) next.onData(c);
    if (eof) next.onEnd();
    return true;
  }
}
