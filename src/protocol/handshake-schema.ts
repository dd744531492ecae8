/** valibot shapes of the handshake JSON bodies (SPEC.md §1.1–§1.4) and the nesting-depth check. Pure. */
import * as v from "valibot";
import { MAX_MAX_FRAME_BYTES, MAX_WINDOW_BYTES, MIN_MAX_FRAME_BYTES } from "./constants.ts";

/** Largest string lengths in handshake bodies, UTF-8 bytes (SPEC.md §1.4). */
export const HandshakeLimits = {
  CLUSTER_NAME_BYTES: 128,
  HOST_NAME_BYTES: 255,
  CREDENTIAL_POLICY_BYTES: 64,
  CREDENTIAL_BYTES: 4096,
  INSTANCE_BYTES: 64,
  CONNECTION_ID_BYTES: 128,
  ADDRESS_BYTES: 64,
  GRACEFUL_CLOSE_ADDRESSES: 1024,
  MAX_SLOT: 65535,
  MAX_VERSION: 255,
  MAX_WEIGHT: 100,
  MAX_RETRY_AFTER_MS: 2 ** 31 - 1,
} as const;

const L = HandshakeLimits;

/** A string of `min..max` UTF-8 bytes. */
function bytes(min: number, max: number) {
  return v.pipe(v.string(), v.minBytes(min), v.maxBytes(max));
}

/** An integer `min..max` (JSON numbers; `10.0` counts as 10). */
function int(min: number, max: number) {
  return v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
}

/** True for a JSON object (not null, not an array). */
export function isJsonObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

const JsonObject = v.custom<Record<string, unknown>>(isJsonObject, "must be an object");

/** ConnectionInitInfo body (flag 1). `host_name` and `extra` may be missing (→ `""`, `null`); unknown keys are dropped. */
export const InitInfoSchema = v.object({
  cluster_name: bytes(1, L.CLUSTER_NAME_BYTES),
  weight: int(0, L.MAX_WEIGHT),
  host_name: v.optional(bytes(0, L.HOST_NAME_BYTES), ""),
  credential_policy: bytes(0, L.CREDENTIAL_POLICY_BYTES),
  credential: bytes(0, L.CREDENTIAL_BYTES),
  extra: v.optional(v.nullable(JsonObject), null),
});

/** `backchannel` announced by the server in a success response. */
const ServerBackchannelSchema = v.object({
  version: int(1, L.MAX_VERSION),
  window: int(1, MAX_WINDOW_BYTES),
  max_frame: int(MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES),
});

/** ConnectionInitResponse body (flag 2). Optional keys, when present, must have their type. */
export const InitResponseSchema = v.object({
  status: int(0, 255),
  connection_id: v.optional(bytes(1, L.CONNECTION_ID_BYTES)),
  backchannel: v.optional(ServerBackchannelSchema),
  retry_after_ms: v.optional(int(0, L.MAX_RETRY_AFTER_MS)),
});

/** GracefulClose body (flag 3). `addresses: null` (a Go nil slice) decodes as `[]`. */
export const GracefulCloseSchema = v.object({
  addresses: v.pipe(
    v.nullable(v.pipe(v.array(bytes(0, L.ADDRESS_BYTES)), v.maxLength(L.GRACEFUL_CLOSE_ADDRESSES))),
    v.transform((a): string[] => a ?? []),
  ),
  cluster_name: bytes(1, L.CLUSTER_NAME_BYTES),
});

/** `extra.backchannel` of a ConnectionInitInfo (SPEC.md §1.1). Its shape is the same in every protocol version. */
export const BackchannelHelloSchema = v.object({
  version: int(1, L.MAX_VERSION),
  role: v.picklist(["data", "aside"]),
  slot: int(0, L.MAX_SLOT),
  instance: bytes(1, L.INSTANCE_BYTES),
  window: int(1, MAX_WINDOW_BYTES),
  max_frame: int(MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES),
});

/**
 * True if a parsed JSON value nests deeper than `max` (a top-level object or array is depth 1). Walks at most
 * `max + 1` levels deep, so it is safe on hostile input.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  return walk(value, 1, max);
}

function walk(x: unknown, depth: number, max: number): boolean {
  if (typeof x !== "object" || x === null) return false;
  if (depth > max) return true;
  const children = Array.isArray(x) ? x : Object.values(x);
  for (const c of children) if (walk(c, depth + 1, max)) return true;
  return false;
}

/**
 * Operator-readable summary of valibot issues: dotted paths and what was expected, never the received values
 * (they may hold credentials).
 */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .slice(0, 4)
    .map((i) => `${v.getDotPath(i) ?? "(root)"}: expected ${i.expected ?? i.kind}`)
    .join("; ");
}
