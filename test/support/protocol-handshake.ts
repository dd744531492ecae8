/** Handshake-test support: raw frame builder (any header bytes) and a feeder recording results and buffering. */
import { HandshakeDecoder, type HandshakeResult } from "../../src/protocol/handshake.ts";

/** Header overrides for {@link rawHandshake}. */
export interface RawHeader {
  magic?: [number, number];
  version?: number;
  type?: [number, number];
  /** Length field; defaults to the body's real length. */
  length?: number;
}

/** A handshake frame with arbitrary header bytes; `body` is JSON text (UTF-8 encoded) or raw bytes. */
export function rawHandshake(flag: number, body: string | Uint8Array, h: RawHeader = {}): Uint8Array<ArrayBuffer> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const len = h.length ?? bytes.length;
  const [m0, m1] = h.magic ?? [0x20, 0x88];
  const [t0, t1] = h.type ?? (flag === 2 ? [2, 0] : [1, 0]);
  const out = new Uint8Array(8 + bytes.length);
  out.set([m0, m1, h.version ?? 1, flag, t0, t1, (len >> 8) & 255, len & 255]);
  out.set(bytes, 8);
  return out;
}

/** Outcome of feeding chunks to one decoder. */
export interface HandshakeFeed {
  /** The last result (the first non-"more" one, if any). */
  result: HandshakeResult;
  /** How many chunks were pushed before a final result (or all of them). */
  pushes: number;
  /** Peak bufferedBytes seen after any push. */
  maxBuffered: number;
}

/** Pushes `chunks` into `dec` until a non-"more" result. */
export function feedHandshake(chunks: readonly Uint8Array[], dec = new HandshakeDecoder()): HandshakeFeed {
  let result: HandshakeResult = { kind: "more" };
  let pushes = 0;
  let maxBuffered = 0;
  for (const c of chunks) {
    result = dec.push(c);
    pushes++;
    maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    if (result.kind !== "more") break;
  }
  return { result, pushes, maxBuffered };
}

/** The error code of a result, `"more"`, or `"frame"`. */
export function outcome(r: HandshakeResult): string {
  return r.kind === "error" ? r.error.code : r.kind;
}
