/**
 * What a soak visitor tells the soak target in the first 40 bytes of its stream, and what the target reports back
 * to the soak over IPC. Both ends generate and verify payloads with test/support/pattern.ts (seeded, never stored).
 */

export const HEADER_BYTES = 40;
const MAGIC = 0x534f414b; // "SOAK"
/** `targetAbortAt` meaning "never". */
export const NEVER = 0xffffffff;

/** The visitor's request. Byte counts are payload bytes after the header. */
export interface StreamHeader {
  streamId: number;
  upSeed: number;
  upBytes: number;
  downSeed: number;
  downBytes: number;
  /** "early": FIN as soon as the target wrote everything; "late": only after the visitor's FIN too. */
  targetClose: "early" | "late";
  /** The target pauses reading this long (ms) after every 256 KiB; 0 = reads at full speed. */
  targetSlowMs: number;
  /** The target resets the connection once it has written this many bytes (NEVER = does not). */
  targetAbortAt: number;
  /** Size of the target's writes. */
  targetChunk: number;
}

export function encodeHeader(h: StreamHeader): Uint8Array {
  const b = new Uint8Array(HEADER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, MAGIC);
  v.setUint32(4, h.streamId);
  v.setUint32(8, h.upSeed);
  v.setUint32(12, h.upBytes);
  v.setUint32(16, h.downSeed);
  v.setUint32(20, h.downBytes);
  v.setUint8(24, h.targetClose === "late" ? 1 : 0);
  v.setUint16(26, Math.min(0xffff, h.targetSlowMs));
  v.setUint32(28, h.targetAbortAt);
  v.setUint32(32, h.targetChunk);
  return b;
}

/** Null if the magic is wrong. */
export function decodeHeader(b: Uint8Array): StreamHeader | null {
  const v = new DataView(b.buffer, b.byteOffset, HEADER_BYTES);
  if (v.getUint32(0) !== MAGIC) return null;
  return {
    streamId: v.getUint32(4),
    upSeed: v.getUint32(8),
    upBytes: v.getUint32(12),
    downSeed: v.getUint32(16),
    downBytes: v.getUint32(20),
    targetClose: v.getUint8(24) === 1 ? "late" : "early",
    targetSlowMs: v.getUint16(26),
    targetAbortAt: v.getUint32(28),
    targetChunk: Math.max(1, v.getUint32(32)),
  };
}

/** How one target connection ended (sent to the soak once the socket is closed). */
export interface TargetResult {
  /** Stream id from the header; -1 if the header never arrived complete. */
  id: number;
  /** Payload bytes received from the visitor (after the header). */
  upRecv: number;
  /** Offset of the first byte that did not match the visitor's pattern (or arrived past upBytes); -1 if none. */
  mismatchAt: number;
  /** The visitor's side ended cleanly (FIN, or a clean close after our own FIN). */
  eof: boolean;
  /** Error code of the close (e.g. ECONNRESET), or null for a clean close. */
  error: string | null;
  downSent: number;
  /** The target reset the connection on purpose (targetAbortAt). */
  aborted: boolean;
  /** Wall-clock ms of the first and last event. */
  openedAt: number;
  closedAt: number;
  /** Closed by the target's own idle watchdog (a hang on this side). */
  idleKilled: boolean;
}

/** IPC messages from the target process. */
export type TargetMessage =
  | { type: "ready"; port: number }
  | { type: "gc-done" }
  | { type: "results"; results: TargetResult[] }
  /** Open streams: [id, upRecv, downSent, lastEventAt (wall-clock ms)], and how many sockets are open. */
  | { type: "progress"; at: number; open: [number, number, number, number][]; active: number };
