/**
 * The wire formats of SPEC.md, written from the spec for the scale kit's synthetic agents (not from src/: the kit
 * must find a server that departs from the spec, so it shares no code with the server's own codec). Handshake
 * frames (§1: the agent's ConnectionInitInfo, the server's ConnectionInitResponse) and stream frames (§2: a
 * 10-byte header and a payload). Decoders check every field SPEC lists and throw a {@link WireError} naming the
 * spec's code; they hold at most one partial frame.
 */

/** A departure from SPEC.md by the server: `code` is the spec's name for the check that failed (§1.5, §2.3). */
export class WireError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Stream frame types (§2). */
export const FrameType = {
  DATA: 0,
  OPEN: 1,
  ACK: 2,
  FIN: 3,
  RST: 4,
  WINDOW: 5,
  PING: 6,
  PONG: 7,
  GOAWAY: 8,
  CONTROL: 9,
} as const;

/** RST / GOAWAY codes the swarm sends (§5.2). */
export const WireCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, STREAM_CLOSED: 4, UNKNOWN_SERVICE: 8 } as const;

/** Handshake statuses (§1.2) the swarm tells apart. */
export const Status = { SUCCESS: 1, SERVER_BUSY: 17 } as const;

export const HEADER_BYTES = 10;
const MAX_ID = 0x7fffffff;
/** The largest handshake body the swarm accepts (SPEC's default limit). */
const HANDSHAKE_LIMIT = 16_384;

/** What the swarm sends in its ConnectionInitInfo (§1.1). */
export interface Hello {
  cluster: string;
  weight: number;
  hostName: string;
  credential: string;
  slot: number;
  instance: string;
  /** The per-stream receive window the swarm grants. */
  window: number;
  /** The largest DATA payload the swarm accepts. */
  maxFrame: number;
}

/** A ConnectionInitInfo frame: keys in MOSN's order (§1.4), a data connection, policy `token`. */
export function encodeHello(h: Hello): Uint8Array {
  const body = JSON.stringify({
    cluster_name: h.cluster,
    weight: h.weight,
    host_name: h.hostName,
    credential_policy: "token",
    credential: h.credential,
    extra: { backchannel: { version: 1, role: "data", slot: h.slot, instance: h.instance, window: h.window, max_frame: h.maxFrame } },
  });
  const bytes = new TextEncoder().encode(body);
  const out = new Uint8Array(8 + bytes.length);
  out.set([0x20, 0x88, 0x01, 0x01, 0x01, 0x00, bytes.length >> 8, bytes.length & 0xff]);
  out.set(bytes, 8);
  return out;
}

/** The server's ConnectionInitResponse, as much as the swarm uses of it. */
export interface Response {
  status: number;
  connectionId: string | null;
  /** The server's per-stream receive window and DATA limit (success only). */
  window: number;
  maxFrame: number;
  retryAfterMs: number | null;
}

const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;

/** Checks a response body's shape (§1.2, §1.4). */
function responseOf(json: unknown): Response {
  const o = json as Record<string, unknown>;
  if (typeof json !== "object" || json === null || Array.isArray(json) || !isInt(o.status, 0, 255)) {
    throw new WireError("ERR_HANDSHAKE_SHAPE", "response without an integer status");
  }
  const bc = o.backchannel as Record<string, unknown> | undefined;
  if (o.status === Status.SUCCESS && (typeof bc !== "object" || bc === null || !isInt(bc.window, 1, MAX_ID) || !isInt(bc.max_frame, 16_384, 16_777_216))) {
    throw new WireError("ERR_HANDSHAKE_SHAPE", "success response without backchannel {window, max_frame}");
  }
  if (o.retry_after_ms !== undefined && !isInt(o.retry_after_ms, 0, MAX_ID)) throw new WireError("ERR_HANDSHAKE_SHAPE", "retry_after_ms is not an integer");
  if (o.connection_id !== undefined && typeof o.connection_id !== "string") throw new WireError("ERR_HANDSHAKE_SHAPE", "connection_id is not a string");
  return {
    status: o.status,
    connectionId: (o.connection_id as string | undefined) ?? null,
    window: (bc?.window as number | undefined) ?? 0,
    maxFrame: (bc?.max_frame as number | undefined) ?? 0,
    retryAfterMs: (o.retry_after_ms as number | undefined) ?? null,
  };
}

/**
 * Reads the one ConnectionInitResponse of a connection. `push` returns null while the frame is incomplete, else
 * the response and the bytes after it (the first stream frames); it throws a WireError at the first bad field.
 */
export class ResponseReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): { response: Response; rest: Uint8Array } | null {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf);
    b.set(chunk, this.buf.length);
    this.buf = b;
    const fail = (code: string, what: string) => {
      throw new WireError(code, what);
    };
    if (b.length >= 2 && (b[0] !== 0x20 || b[1] !== 0x88)) fail("ERR_HANDSHAKE_MAGIC", "bad handshake magic");
    if (b.length >= 3 && b[2] !== 0x01) fail("ERR_HANDSHAKE_VERSION", `handshake version ${b[2]}`);
    if (b.length >= 4 && b[3] !== 0x02) fail("ERR_HANDSHAKE_FLAG", `handshake flag ${b[3]} (a response is 2)`);
    if (b.length >= 6 && (b[4] !== 0x02 || b[5] !== 0x00)) fail("ERR_HANDSHAKE_TYPE", "response type is not 02 00");
    if (b.length < 8) return null;
    const len = ((b[6] as number) << 8) | (b[7] as number);
    if (len > HANDSHAKE_LIMIT) fail("ERR_HANDSHAKE_TOO_LARGE", `response body of ${len} bytes`);
    if (b.length < 8 + len) return null;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(8, 8 + len)));
    } catch {
      fail("ERR_HANDSHAKE_JSON", "response body is not UTF-8 JSON");
    }
    return { response: responseOf(json), rest: b.slice(8 + len) };
  }
}

/** One stream frame. DATA payloads are whole (the reader joins a frame split across reads). */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
  /** OPEN only: the parsed payload. */
  open?: Open;
}

/** A stream frame's bytes. */
export function encodeFrame(type: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const v = new DataView(out.buffer);
  v.setUint8(0, type);
  v.setUint32(2, streamId);
  v.setUint32(6, payload.length);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** A frame whose payload is one uint32 (RST, WINDOW). */
export function encodeU32Frame(type: number, streamId: number, value: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, value);
  return encodeFrame(type, streamId, p);
}

/** The allowed payload length of each type other than DATA (§2): [min, max]. */
const PAYLOAD_LIMITS: Record<number, [number, number]> = {
  [FrameType.OPEN]: [8, 352],
  [FrameType.ACK]: [0, 0],
  [FrameType.FIN]: [0, 0],
  [FrameType.RST]: [4, 4],
  [FrameType.WINDOW]: [4, 4],
  [FrameType.PING]: [8, 8],
  [FrameType.PONG]: [8, 8],
  [FrameType.GOAWAY]: [8, 8],
  [FrameType.CONTROL]: [2, 16_384],
};

/**
 * Checks a header's fields as far as `h` holds them (§2.3, in the spec's order: type after 1 byte, flags after 2,
 * stream id after 6, length after 10); returns the payload length once the header is whole, else -1.
 */
function checkHeader(h: Uint8Array, maxFrame: number): number {
  const type = h[0] as number;
  if (type > FrameType.CONTROL) throw new WireError("ERR_FRAME_TYPE", `frame type ${type}`);
  if (h.length < 2) return -1;
  const flags = h[1] as number;
  if (flags !== 0 && !(type === FrameType.OPEN && flags === 1)) throw new WireError("ERR_FRAME_FLAGS", `flags ${flags} on type ${type}`);
  if (h.length < 6) return -1;
  const v = new DataView(h.buffer, h.byteOffset, h.length);
  const id = v.getUint32(2);
  const connectionLevel = type >= FrameType.PING;
  if (id > MAX_ID || (connectionLevel ? id !== 0 : id === 0)) throw new WireError("ERR_FRAME_STREAM_ID", `stream id ${id} on type ${type}`);
  if (h.length < HEADER_BYTES) return -1;
  const len = v.getUint32(6);
  const [lo, hi] = type === FrameType.DATA ? [0, maxFrame] : (PAYLOAD_LIMITS[type] as [number, number]);
  if (len < lo || len > hi) throw new WireError("ERR_FRAME_SIZE", `payload of ${len} bytes on type ${type}`);
  return len;
}

/** The payload checks of §2.3: WINDOW increment 1..2^31−1, GOAWAY last stream id ≤ 2^31−1, OPEN well formed. */
function checkPayload(f: Frame): Frame {
  const v = new DataView(f.payload.buffer, f.payload.byteOffset, f.payload.length);
  if (f.type === FrameType.WINDOW && (v.getUint32(0) < 1 || v.getUint32(0) > MAX_ID)) {
    throw new WireError("ERR_FRAME_PAYLOAD", `WINDOW increment ${v.getUint32(0)}`);
  }
  if (f.type === FrameType.GOAWAY && v.getUint32(0) > MAX_ID) throw new WireError("ERR_FRAME_PAYLOAD", `GOAWAY last stream id ${v.getUint32(0)}`);
  if (f.type === FrameType.OPEN) f.open = parseOpen(f.payload);
  return f;
}

/**
 * Cuts stream frames out of a byte stream. `push` returns the complete frames in the chunk (in order); a frame cut
 * by the chunk's end waits for the next. Header fields are checked as soon as their bytes are in, before the
 * payload arrives, so an oversized length fails at once; after a failure the reader accepts nothing more.
 */
export class FrameReader {
  private pending: Uint8Array | null = null;
  private failed = false;

  constructor(private readonly maxFrame: number) {}

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw new WireError("ERR_PROTOCOL", "frames after a decoding failure");
    let b = chunk;
    if (this.pending !== null) {
      const joined = new Uint8Array(this.pending.length + chunk.length);
      joined.set(this.pending);
      joined.set(chunk, this.pending.length);
      b = joined;
      this.pending = null;
    }
    const out: Frame[] = [];
    let at = 0;
    try {
      while (b.length > at) {
        const len = checkHeader(b.subarray(at, at + HEADER_BYTES), this.maxFrame);
        if (len < 0 || b.length - at < HEADER_BYTES + len) break;
        const v = new DataView(b.buffer, b.byteOffset + at, HEADER_BYTES);
        const payload = b.slice(at + HEADER_BYTES, at + HEADER_BYTES + len);
        out.push(checkPayload({ type: v.getUint8(0), flags: v.getUint8(1), streamId: v.getUint32(2), payload }));
        at += HEADER_BYTES + len;
      }
    } catch (e) {
      this.failed = true;
      throw e;
    }
    if (at < b.length) this.pending = b.slice(at);
    return out;
  }

  /** Bytes held of a partial frame. */
  get held(): number {
    return this.pending?.length ?? 0;
  }
}

/** An OPEN payload (§2.1). */
export interface Open {
  service: string;
  visitor: string;
  visitorPort: number;
  route: string;
  routePort: number;
}

/** Parses an OPEN payload; throws ERR_FRAME_PAYLOAD unless the lengths add up exactly and the texts are allowed. */
export function parseOpen(p: Uint8Array): Open {
  const bad = (what: string): never => {
    throw new WireError("ERR_FRAME_PAYLOAD", `OPEN: ${what}`);
  };
  let at = 0;
  const text = (min: number, max: number, allowed: RegExp, what: string) => {
    const n = p[at];
    if (n === undefined || n < min || n > max || at + 1 + n > p.length) bad(`${what} length`);
    const s = String.fromCharCode(...p.subarray(at + 1, at + 1 + (n as number)));
    if (!allowed.test(s)) bad(`${what} characters`);
    at += 1 + (n as number);
    return s;
  };
  const port = () => {
    if (at + 2 > p.length) bad("truncated port");
    const v = ((p[at] as number) << 8) | (p[at + 1] as number);
    at += 2;
    return v;
  };
  const service = text(1, 255, /^[A-Za-z0-9._-]+$/, "service");
  const visitor = text(0, 45, /^[\x21-\x7e]*$/, "visitor address");
  const visitorPort = port();
  const route = text(0, 45, /^[\x21-\x7e]*$/, "route address");
  const routePort = port();
  if (at !== p.length) bad(`${p.length - at} bytes left over`);
  return { service, visitor, visitorPort, route, routePort };
}
