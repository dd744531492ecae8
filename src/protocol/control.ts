/**
 * CONTROL messages (frame type 0x09, stream id 0, aside connections only; SPEC.md §4): small JSON objects.
 * Pure: encode to bytes, decode and validate with valibot. Decoding never throws. Forward compatible: unknown keys
 * are dropped and a message of an unknown `type` decodes as `{ type: "unknown" }` (the receiver ignores it), so a
 * newer peer can add messages; anything else malformed is null (a protocol error).
 */
import * as v from "valibot";
import { TunnelError } from "../errors.ts";
import { MAX_CONTROL_MESSAGE_BYTES } from "./constants.ts";

/** Largest CONTROL payload (bytes); the same limit as MAX_CONTROL_MESSAGE_BYTES, which the frame codec enforces. */
export const MAX_CONTROL_BYTES = MAX_CONTROL_MESSAGE_BYTES;

const ConnectionId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

const ControlSchema = v.variant("type", [
  /** agent → server: stop routing to these connections of mine; acknowledge each once its streams are done. */
  v.object({ type: v.literal("drain"), connection_ids: v.pipe(v.array(ConnectionId), v.maxLength(256)) }),
  /** agent → server: my new weight (1..100). */
  v.object({ type: v.literal("weight"), weight: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100)) }),
  /** server → agent: this connection has no streams left and is being closed. */
  v.object({ type: v.literal("drained"), connection_id: ConnectionId }),
]);

/** A CONTROL message. */
export type ControlMessage = v.InferOutput<typeof ControlSchema>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a message to a new buffer. @throws TunnelError ERR_INTERNAL if it would exceed MAX_CONTROL_BYTES (our bug). */
export function encodeControl(msg: ControlMessage): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(msg));
  if (bytes.byteLength > MAX_CONTROL_BYTES) {
    throw new TunnelError("ERR_INTERNAL", `CONTROL message of ${bytes.byteLength} bytes`);
  }
  return bytes;
}

const KNOWN_TYPES: ReadonlySet<unknown> = new Set(["drain", "weight", "drained"]);
const Envelope = v.object({ type: v.pipe(v.string(), v.maxLength(64)) });

/**
 * Decodes and validates a CONTROL payload: the message; `{ type: "unknown" }` for a well-formed message of a type
 * this version does not know; null if it is not UTF-8 JSON, or a known type of the wrong shape.
 */
export function decodeControl(payload: Uint8Array): ControlMessage | { type: "unknown" } | null {
  if (payload.byteLength > MAX_CONTROL_BYTES) return null;
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  const r = v.safeParse(ControlSchema, json);
  if (r.success) return r.output;
  const e = v.safeParse(Envelope, json);
  return e.success && !KNOWN_TYPES.has(e.output.type) ? { type: "unknown" } : null;
}
