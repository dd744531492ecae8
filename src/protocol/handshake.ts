/** MOSN-compatible handshake frame (SPEC.md §1): bodies, encoder, incremental decoder, the Backchannel hello. Pure. */
import * as v from "valibot";
import { TunnelError } from "../errors.ts";
import {
  DEFAULT_HANDSHAKE_MAX_BODY_BYTES,
  HANDSHAKE_HEADER_BYTES,
  HANDSHAKE_MAGIC_0,
  HANDSHAKE_MAGIC_1,
  HANDSHAKE_MAX_BODY_LIMIT,
  HANDSHAKE_MAX_JSON_DEPTH,
  HANDSHAKE_VERSION,
  HandshakeFlag,
} from "./constants.ts";
import {
  BackchannelHelloSchema,
  GracefulCloseSchema,
  InitInfoSchema,
  InitResponseSchema,
  describeIssues,
  isJsonObject,
  jsonDepthExceeds,
} from "./handshake-schema.ts";

/** ConnectionInitInfo (flag 1, agent → server), keys as MOSN's Go struct (SPEC.md §1.1). */
export interface ConnectionInitInfo {
  cluster_name: string;
  weight: number;
  host_name: string;
  credential_policy: string;
  credential: string;
  extra: Record<string, unknown> | null;
}

/** `extra.backchannel` of a ConnectionInitInfo: the agent's stream-protocol announcement (SPEC.md §1.1). */
export interface BackchannelHello {
  version: number;
  role: "data" | "aside";
  slot: number;
  instance: string;
  /** Initial per-stream receive window the agent grants, bytes. */
  window: number;
  /** Largest DATA payload the agent accepts, bytes. */
  max_frame: number;
}

/** ConnectionInitResponse (flag 2, server → agent). Optional keys are present only on success (§1.2). */
export interface ConnectionInitResponse {
  status: number;
  connection_id?: string;
  backchannel?: { version: number; window: number; max_frame: number };
  retry_after_ms?: number;
}

/** MOSN's GracefulCloseOnewayRequest (flag 3). */
export interface GracefulClose {
  addresses: string[];
  cluster_name: string;
}

/** One handshake frame: the flag byte tells the body type. */
export type HandshakeMessage =
  | { flag: typeof HandshakeFlag.INIT_INFO; body: ConnectionInitInfo }
  | { flag: typeof HandshakeFlag.INIT_RESPONSE; body: ConnectionInitResponse }
  | { flag: typeof HandshakeFlag.GRACEFUL_CLOSE; body: GracefulClose };

/** Outcome of {@link HandshakeDecoder.push}. `rest` is a view of the pushed chunk after the frame (may be empty). */
export type HandshakeResult =
  | { kind: "more" }
  | { kind: "frame"; message: HandshakeMessage; rest: Uint8Array }
  | { kind: "error"; error: TunnelError };

const SCHEMAS = {
  [HandshakeFlag.INIT_INFO]: InitInfoSchema,
  [HandshakeFlag.INIT_RESPONSE]: InitResponseSchema,
  [HandshakeFlag.GRACEFUL_CLOSE]: GracefulCloseSchema,
} as const;
const ALL_FLAGS: readonly number[] = [HandshakeFlag.INIT_INFO, HandshakeFlag.INIT_RESPONSE, HandshakeFlag.GRACEFUL_CLOSE];
const MORE: HandshakeResult = Object.freeze({ kind: "more" });
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Validates a body limit and clamps it to HANDSHAKE_MAX_BODY_LIMIT. */
function bodyLimit(maxBodyBytes: number | undefined): number {
  const max = maxBodyBytes ?? DEFAULT_HANDSHAKE_MAX_BODY_BYTES;
  if (!Number.isInteger(max) || max < 0) throw new TunnelError("ERR_INTERNAL", `handshake maxBodyBytes ${max}`);
  return Math.min(max, HANDSHAKE_MAX_BODY_LIMIT);
}

/** The body object in MOSN's Go key order (JSON.stringify keeps insertion order). */
function orderedBody(msg: HandshakeMessage): object {
  switch (msg.flag) {
    case HandshakeFlag.INIT_INFO: {
      const b = msg.body;
      const { cluster_name, weight, host_name, credential_policy, credential, extra } = b;
      return { cluster_name, weight, host_name, credential_policy, credential, extra };
    }
    case HandshakeFlag.INIT_RESPONSE: {
      const b = msg.body;
      const out: Record<string, unknown> = { status: b.status };
      if (b.connection_id !== undefined) out["connection_id"] = b.connection_id;
      if (b.backchannel !== undefined) {
        const { version, window, max_frame } = b.backchannel;
        out["backchannel"] = { version, window, max_frame };
      }
      if (b.retry_after_ms !== undefined) out["retry_after_ms"] = b.retry_after_ms;
      return out;
    }
    case HandshakeFlag.GRACEFUL_CLOSE:
      return { addresses: msg.body.addresses, cluster_name: msg.body.cluster_name };
  }
}

/**
 * Encodes one handshake frame: the 8-byte header (`20 88 01 flag type length`) and compact JSON with MOSN's key
 * order (InitInfo: all six keys; response: `status` first, then `connection_id`, `backchannel`, `retry_after_ms`
 * only when present; GracefulClose: `addresses`, `cluster_name`). Returns a new buffer owned by the caller.
 * @param maxBodyBytes body limit in bytes, default DEFAULT_HANDSHAKE_MAX_BODY_BYTES, clamped to 65535.
 * @throws TunnelError ERR_HANDSHAKE_TOO_LARGE if the JSON is longer than the limit; ERR_INTERNAL if the message
 *   would fail our own decoder's checks (flag, shape, nesting depth) or cannot be serialised.
 */
export function encodeHandshake(msg: HandshakeMessage, maxBodyBytes?: number): Uint8Array {
  const limit = bodyLimit(maxBodyBytes);
  const schema = SCHEMAS[msg.flag];
  if (schema === undefined) throw new TunnelError("ERR_INTERNAL", `handshake flag ${String(msg.flag)}`);
  const body = orderedBody(msg);
  const checked = v.safeParse(schema, body);
  if (!checked.success) {
    throw new TunnelError("ERR_INTERNAL", `handshake body shape: ${describeIssues(checked.issues)}`);
  }
  if (jsonDepthExceeds(body, HANDSHAKE_MAX_JSON_DEPTH)) throw new TunnelError("ERR_INTERNAL", "handshake body too deep");
  let json: Uint8Array;
  try {
    json = utf8Encoder.encode(JSON.stringify(body));
  } catch (cause) {
    throw new TunnelError("ERR_INTERNAL", "handshake body not serialisable", { cause });
  }
  if (json.length > limit) {
    throw new TunnelError("ERR_HANDSHAKE_TOO_LARGE", `handshake body ${json.length} bytes, limit ${limit}`);
  }
  const out = new Uint8Array(HANDSHAKE_HEADER_BYTES + json.length);
  out[0] = HANDSHAKE_MAGIC_0;
  out[1] = HANDSHAKE_MAGIC_1;
  out[2] = HANDSHAKE_VERSION;
  out[3] = msg.flag;
  out[4] = msg.flag === HandshakeFlag.INIT_RESPONSE ? 2 : 1;
  out[5] = 0;
  out[6] = json.length >>> 8;
  out[7] = json.length & 0xff;
  out.set(json, HANDSHAKE_HEADER_BYTES);
  return out;
}

/**
 * Reads `extra.backchannel` of an InitInfo. Returns null when `extra` is null or has no own `backchannel` key
 * (a plain MOSN agent), the hello (a fresh object), or TunnelError ERR_HANDSHAKE_SHAPE if `backchannel` is present
 * but malformed (SPEC.md §1.1 limits). Never throws.
 */
export function readBackchannelHello(info: ConnectionInitInfo): BackchannelHello | null | TunnelError {
  const extra = info.extra;
  if (extra === null || !Object.hasOwn(extra, "backchannel")) return null;
  const parsed = v.safeParse(BackchannelHelloSchema, extra["backchannel"]);
  if (!parsed.success || !isJsonObject(extra["backchannel"])) {
    const why = parsed.success ? "not an object" : describeIssues(parsed.issues);
    return new TunnelError("ERR_HANDSHAKE_SHAPE", `extra.backchannel: ${why}`);
  }
  return parsed.output;
}

/** Decodes a complete body: UTF-8 → JSON → depth → shape, per SPEC.md §1.5. */
function decodeBody(flag: HandshakeFlag, bytes: Uint8Array): HandshakeMessage | TunnelError {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return new TunnelError("ERR_HANDSHAKE_JSON", `handshake body (${bytes.length} bytes) is not UTF-8 JSON`);
  }
  if (jsonDepthExceeds(value, HANDSHAKE_MAX_JSON_DEPTH)) {
    return new TunnelError("ERR_HANDSHAKE_SHAPE", `handshake JSON nests deeper than ${HANDSHAKE_MAX_JSON_DEPTH}`);
  }
  if (!isJsonObject(value)) return new TunnelError("ERR_HANDSHAKE_SHAPE", "handshake JSON is not an object");
  const parsed = v.safeParse(SCHEMAS[flag], value);
  if (!parsed.success) return new TunnelError("ERR_HANDSHAKE_SHAPE", `flag ${flag}: ${describeIssues(parsed.issues)}`);
  return { flag, body: parsed.output } as HandshakeMessage;
}

/**
 * Incremental decoder for ONE handshake frame (SPEC.md §1.5). Push chunks until the result is not "more".
 * Checks each header field as soon as its bytes are in; never holds more than 8 + maxBody bytes; never throws on
 * peer input. After an "error", every push returns that same result. After a "frame", the decoder is spent:
 * the bytes behind the frame are in `rest`, and a further push throws TunnelError ERR_INTERNAL (our misuse).
 */
export class HandshakeDecoder {
  private readonly maxBody: number;
  private readonly accept: readonly number[];
  private readonly header = new Uint8Array(HANDSHAKE_HEADER_BYTES);
  private headerHave = 0;
  private body: Uint8Array | null = null;
  private bodyHave = 0;
  private done: HandshakeResult | null = null;

  /**
   * @param opts.maxBodyBytes body limit in bytes (default 16384; clamped to 65535).
   * @param opts.accept flags allowed here (default all three); others fail with ERR_HANDSHAKE_FLAG.
   * @throws TunnelError ERR_INTERNAL on a negative/non-integer limit or an unknown flag in `accept`.
   */
  constructor(opts?: { maxBodyBytes?: number; accept?: readonly number[] }) {
    this.maxBody = bodyLimit(opts?.maxBodyBytes);
    const accept = opts?.accept ?? ALL_FLAGS;
    if (accept.some((f) => !ALL_FLAGS.includes(f))) {
      throw new TunnelError("ERR_INTERNAL", `handshake accept ${accept.join(",")}`);
    }
    this.accept = [...accept];
  }

  /** Bytes copied and held between pushes (header + partial body); 0 once a result is final. ≤ 8 + maxBody. */
  get bufferedBytes(): number {
    return this.done === null ? this.headerHave + this.bodyHave : 0;
  }

  /**
   * Consumes `chunk` (not modified; `rest` is a view of it). Returns "more" until the frame is complete, then
   * "frame" or "error" (ERR_HANDSHAKE_MAGIC, _VERSION, _FLAG, _TYPE, _TOO_LARGE, _JSON, _SHAPE).
   * @throws TunnelError ERR_INTERNAL if called again after a "frame" result.
   */
  push(chunk: Uint8Array): HandshakeResult {
    if (this.done !== null) {
      if (this.done.kind === "error") return this.done;
      throw new TunnelError("ERR_INTERNAL", "HandshakeDecoder.push after a complete frame");
    }
    let pos = 0;
    while (this.headerHave < HANDSHAKE_HEADER_BYTES) {
      if (pos >= chunk.length) return MORE;
      this.header[this.headerHave++] = chunk[pos++] as number;
      const err = this.headerError(this.headerHave);
      if (err !== null) return this.finish({ kind: "error", error: err });
    }
    const h = this.header;
    const flag = h[3] as HandshakeFlag;
    const len = ((h[6] as number) << 8) | (h[7] as number);
    let bytes: Uint8Array;
    if (this.bodyHave === 0 && chunk.length - pos >= len) {
      bytes = chunk.subarray(pos, pos + len);
      pos += len;
    } else {
      const body = (this.body ??= new Uint8Array(len));
      const n = Math.min(len - this.bodyHave, chunk.length - pos);
      body.set(chunk.subarray(pos, pos + n), this.bodyHave);
      this.bodyHave += n;
      pos += n;
      if (this.bodyHave < len) return MORE;
      bytes = body;
    }
    const message = decodeBody(flag, bytes);
    if (message instanceof TunnelError) return this.finish({ kind: "error", error: message });
    return this.finish({ kind: "frame", message, rest: chunk.subarray(pos) });
  }

  /** Checks the header field that byte count `n` just completed (SPEC.md §1.5 order). */
  private headerError(n: number): TunnelError | null {
    const h = this.header;
    switch (n) {
      case 2:
        return h[0] === HANDSHAKE_MAGIC_0 && h[1] === HANDSHAKE_MAGIC_1
          ? null
          : new TunnelError("ERR_HANDSHAKE_MAGIC", `handshake magic ${hex(h, 0, 2)}`);
      case 3:
        return h[2] === HANDSHAKE_VERSION ? null : new TunnelError("ERR_HANDSHAKE_VERSION", `handshake version ${h[2]}`);
      case 4:
        return this.accept.includes(h[3] as number)
          ? null
          : new TunnelError("ERR_HANDSHAKE_FLAG", `handshake flag ${h[3]} not accepted here`);
      case 6: {
        const want = h[3] === HandshakeFlag.INIT_RESPONSE ? 2 : 1;
        return h[4] === want && h[5] === 0
          ? null
          : new TunnelError("ERR_HANDSHAKE_TYPE", `handshake type ${hex(h, 4, 6)} with flag ${h[3]}`);
      }
      case 8: {
        const len = ((h[6] as number) << 8) | (h[7] as number);
        return len <= this.maxBody
          ? null
          : new TunnelError("ERR_HANDSHAKE_TOO_LARGE", `handshake body ${len} bytes, limit ${this.maxBody}`);
      }
      default:
        return null;
    }
  }

  private finish(result: HandshakeResult): HandshakeResult {
    this.done = result;
    this.body = null;
    return result;
  }
}

function hex(b: Uint8Array, from: number, to: number): string {
  return Array.from(b.subarray(from, to), (x) => x.toString(16).padStart(2, "0")).join(" ");
}
