/**
 * Reads the server name of a visitor's TLS ClientHello (RFC 8446 §4.1.2, §5.1; RFC 6066 §3) without taking part in
 * TLS: for routing by name, the bytes themselves are passed on untouched by the caller. Incremental (a ClientHello
 * may come in many reads and several records), bounded, and total: peer input never makes it throw; every outcome
 * is a value. Pure.
 */

/** Most bytes read before a decision: a ClientHello that needs more (record headers included) is `oversized`. */
export const SNIFF_MAX_BYTES = 16 * 1024;
/** Largest TLS record payload (RFC 8446 §5.1: 2^14). */
const MAX_RECORD_BYTES = 16_384;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
/** Largest handshake message that can fit in SNIFF_MAX_BYTES with its one record header. */
const MAX_HELLO_BYTES = SNIFF_MAX_BYTES - RECORD_HEADER_BYTES;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST = 0;

/** Why a ClientHello was not read: not TLS at all, broken, or larger than {@link SNIFF_MAX_BYTES}. */
export type HelloError = "not_tls" | "malformed" | "oversized";

/**
 * Outcome of {@link ClientHelloDecoder.push}: `more` (feed more bytes), `hello` with the server name (lower case;
 * null when the ClientHello names none), or `error`.
 */
export type HelloResult =
  | { readonly status: "more" }
  | { readonly status: "hello"; readonly serverName: string | null }
  | { readonly status: "error"; readonly error: HelloError };

const MORE: HelloResult = Object.freeze({ status: "more" });
const fail = (error: HelloError): HelloResult => ({ status: "error", error });

/** A DNS host name as SNI carries it (RFC 6066 §3): ASCII labels, no trailing dot. `_` tolerated. */
const HOST_NAME_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * Feeds a visitor's first bytes, chunk by chunk, until the ClientHello is complete. Once a result other than
 * `more` was returned, every later push returns it again. Keeps no view of the chunks (it copies what it needs
 * when the message is split); never reads more than {@link SNIFF_MAX_BYTES}. Never throws.
 */
export class ClientHelloDecoder {
  private result: HelloResult = MORE;
  /** Bytes consumed so far (record headers included). */
  private consumed = 0;
  private readonly header = new Uint8Array(RECORD_HEADER_BYTES);
  private headerFill = 0;
  /** Payload bytes left in the current record (0: a record header comes next). */
  private recordLeft = 0;
  /** The handshake message being reassembled: its 4-byte header, then (once its length is known) the body. */
  private readonly msgHeader = new Uint8Array(HANDSHAKE_HEADER_BYTES);
  private msgHeaderFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;

  push(chunk: Uint8Array): HelloResult {
    if (this.result.status !== "more") return this.result;
    if (this.consumed === 0 && chunk.length > 0) {
      const whole = wholeHello(chunk);
      if (whole !== null) return (this.result = whole);
    }
    let off = 0;
    while (off < chunk.length && this.result.status === "more") {
      if (this.consumed >= SNIFF_MAX_BYTES) return (this.result = fail("oversized"));
      const room = SNIFF_MAX_BYTES - this.consumed;
      const n = this.recordLeft === 0 ? this.readHeader(chunk, off, room) : this.readPayload(chunk, off, room);
      off += n;
      this.consumed += n;
    }
    if (this.result.status === "more" && this.consumed >= SNIFF_MAX_BYTES) this.result = fail("oversized");
    return this.result;
  }

  /** Takes record header bytes; returns how many. */
  private readHeader(chunk: Uint8Array, off: number, room: number): number {
    const n = Math.min(RECORD_HEADER_BYTES - this.headerFill, chunk.length - off, room);
    this.header.set(chunk.subarray(off, off + n), this.headerFill);
    const first = this.consumed < RECORD_HEADER_BYTES; // still in the first record's header
    this.headerFill += n;
    const h = this.header;
    if (h[0] !== CONTENT_HANDSHAKE) this.result = fail(first ? "not_tls" : "malformed");
    else if (this.headerFill >= 2 && h[1] !== 0x03) this.result = fail(first ? "not_tls" : "malformed");
    else if (this.headerFill === RECORD_HEADER_BYTES) {
      const len = ((h[3] as number) << 8) | (h[4] as number);
      // Zero-length handshake fragments are forbidden (RFC 8446 §5.1), longer than 2^14 is record_overflow.
      if (len === 0 || len > MAX_RECORD_BYTES) this.result = fail("malformed");
      this.recordLeft = len;
      this.headerFill = 0;
    }
    return n;
  }

  /** Takes record payload bytes into the handshake message; returns how many. */
  private readPayload(chunk: Uint8Array, off: number, room: number): number {
    let n = Math.min(this.recordLeft, chunk.length - off, room);
    if (this.body === null) {
      n = Math.min(n, HANDSHAKE_HEADER_BYTES - this.msgHeaderFill);
      this.msgHeader.set(chunk.subarray(off, off + n), this.msgHeaderFill);
      this.msgHeaderFill += n;
      this.recordLeft -= n;
      if (this.msgHeaderFill === HANDSHAKE_HEADER_BYTES) this.startBody();
      return n;
    }
    n = Math.min(n, this.body.length - this.bodyFill);
    this.body.set(chunk.subarray(off, off + n), this.bodyFill);
    this.bodyFill += n;
    this.recordLeft -= n;
    if (this.bodyFill === this.body.length) this.result = parseHelloBody(this.body);
    return n;
  }

  private startBody(): void {
    const m = this.msgHeader;
    if (m[0] !== HANDSHAKE_CLIENT_HELLO) return void (this.result = fail("malformed"));
    const len = ((m[1] as number) << 16) | ((m[2] as number) << 8) | (m[3] as number);
    if (HANDSHAKE_HEADER_BYTES + len > MAX_HELLO_BYTES) return void (this.result = fail("oversized"));
    this.body = new Uint8Array(len);
    if (len === 0) this.result = parseHelloBody(this.body);
  }
}

/**
 * The common case without a copy: the chunk starts with one record that holds the whole ClientHello. Null when it
 * does not (the caller decodes incrementally); a result when it does, or when the first bytes already decide.
 */
function wholeHello(b: Uint8Array): HelloResult | null {
  if (b[0] !== CONTENT_HANDSHAKE || (b.length >= 2 && b[1] !== 0x03)) return fail("not_tls");
  if (b.length < RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES) return null;
  const recordLen = ((b[3] as number) << 8) | (b[4] as number);
  if (recordLen === 0 || recordLen > MAX_RECORD_BYTES) return fail("malformed");
  // A handshake header split over two records: left to the incremental path.
  if (recordLen < HANDSHAKE_HEADER_BYTES) return null;
  if (b[5] !== HANDSHAKE_CLIENT_HELLO) return fail("malformed");
  const msgLen = ((b[6] as number) << 16) | ((b[7] as number) << 8) | (b[8] as number);
  if (HANDSHAKE_HEADER_BYTES + msgLen > MAX_HELLO_BYTES) return fail("oversized");
  const end = RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES + msgLen;
  if (HANDSHAKE_HEADER_BYTES + msgLen > recordLen || end > b.length) return null;
  return parseHelloBody(b.subarray(RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES, end));
}

/** Big-endian uint16 at `b[o]` (the caller checked the bounds). */
function u16(b: Uint8Array, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number);
}

/**
 * Parses a ClientHello body (after the 4-byte handshake header) for its server name. Every length is checked
 * against what contains it; extensions must fill the body exactly, and none may repeat (RFC 8446 §4.2). A
 * ClientHello without extensions (TLS 1.0 style) or without server_name has no name. Never throws.
 */
export function parseHelloBody(b: Uint8Array): HelloResult {
  // legacy_version(2) random(32) session_id<0..32>
  if (b.length < 35 || b[0] !== 0x03) return fail("malformed");
  let p = 34;
  const sid = b[p] as number;
  if (sid > 32) return fail("malformed");
  p += 1 + sid;
  if (p + 2 > b.length) return fail("malformed");
  const suites = u16(b, p);
  if (suites < 2 || suites % 2 !== 0) return fail("malformed");
  p += 2 + suites;
  if (p + 1 > b.length) return fail("malformed");
  const compressions = b[p] as number;
  if (compressions < 1) return fail("malformed");
  p += 1 + compressions;
  if (p === b.length) return { status: "hello", serverName: null };
  if (p + 2 > b.length || p + 2 + u16(b, p) !== b.length) return fail("malformed");
  return serverNameOfExtensions(b, p + 2);
}

/** Walks the extensions from `p` to the end of `b` (whose total length was checked). */
function serverNameOfExtensions(b: Uint8Array, p: number): HelloResult {
  const seen = new Set<number>();
  let serverName: string | null = null;
  while (p < b.length) {
    if (p + 4 > b.length) return fail("malformed");
    const type = u16(b, p);
    const len = u16(b, p + 2);
    p += 4;
    if (p + len > b.length || seen.has(type)) return fail("malformed");
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = readServerName(b.subarray(p, p + len));
      if (name === undefined) return fail("malformed");
      serverName = name;
    }
    p += len;
  }
  return { status: "hello", serverName };
}

/**
 * The host_name of a server_name extension's data (RFC 6066 §3): a non-empty list, at most one name per type,
 * types other than host_name skipped. Null without a host_name; undefined when malformed (including a host name that
 * is not an ASCII DNS name).
 */
function readServerName(d: Uint8Array): string | null | undefined {
  if (d.length < 2 || u16(d, 0) !== d.length - 2 || d.length === 2) return undefined;
  let p = 2;
  let host: string | null = null;
  const types = new Set<number>();
  while (p < d.length) {
    if (p + 3 > d.length) return undefined;
    const type = d[p] as number;
    const len = u16(d, p + 1);
    p += 3;
    if (len === 0 || p + len > d.length || types.has(type)) return undefined;
    types.add(type);
    if (type === NAME_TYPE_HOST) {
      host = asciiLower(d, p, len);
      if (host === null || !HOST_NAME_RE.test(host)) return undefined;
    }
    p += len;
  }
  return host;
}

/** `d[p .. p+n)` as lower-case text if every byte is printable ASCII, else null. */
function asciiLower(d: Uint8Array, p: number, n: number): string | null {
  let s = "";
  for (let i = p; i < p + n; i++) {
    let c = d[i] as number;
    if (c < 0x21 || c > 0x7e) return null;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * A TLS alert record in plaintext (RFC 8446 §5.1, §6): level fatal(2) and `description`, e.g. 112
 * `unrecognized_name` → `15 03 03 00 02 02 70`, 50 `decode_error` → `15 03 03 00 02 02 32`. A fresh array.
 */
export function fatalAlert(description: number): Uint8Array {
  return Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description & 0xff);
}

/** Alert descriptions the server sends to visitors it does not route (RFC 8446 §6). */
export const TlsAlert = { DECODE_ERROR: 50, UNRECOGNIZED_NAME: 112 } as const;
