/**
 * CONTROL messages (frame type 0x09, stream id 0, aside connections only; SPEC.md §4): small JSON objects.
 * Pure: encode to bytes, decode and validate with valibot. Decoding never throws; it returns null for anything
 * that is not a valid message.
 */
import * as v from "valibot";
import { TunnelError } from "../errors.ts";
import { MAX_CONTROL_MESSAGE_BYTES } from "./constants.ts";

/** Largest CONTROL payload (bytes); the same limit as MAX_CONTROL_MESSAGE_BYTES, which the frame codec enforces. */
export const MAX_CONTROL_BYTES = MAX_CONTROL_MESSAGE_BYTES;

const ConnectionId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

const ControlSchema = v.variant("type", [
  /** agent → server: stop routing to these connections of mine; acknowledge each once its streams are done. */
  v.strictObject({ type: v.literal("drain"), connection_ids: v.pipe(v.array(ConnectionId), v.maxLength(256)) }),
  /** agent → server: my new weight (1..100). */
  v.strictObject({ type: v.literal("weight"), weight: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100)) }),
  /** server → agent: this connection has no streams left and is being closed. */
  v.strictObject({ type: v.literal("drained"), connection_id: ConnectionId }),
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

/** Decodes and validates a CONTROL payload; null if it is not valid UTF-8 JSON of a known shape. */
export function decodeControl(payload: Uint8Array): ControlMessage | null {
  if (payload.byteLength > MAX_CONTROL_BYTES) return null;
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  const r = v.safeParse(ControlSchema, json);
  return r.success ? r.output : null;
}
