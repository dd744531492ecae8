/**
 * What a server stream keeps so that a visitor refused by one agent can go to another (SPEC §2.2, "Refusal before
 * ACK"): copies of the visitor bytes sent before the agent's ACK, up to a cap.
 */
import { WireCode } from "../protocol/constants.ts";

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
