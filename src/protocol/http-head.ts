/**
 * Reads the host an HTTP/1.x request is for from its request head (RFC 9112 §2–§3, RFC 9110 §7.2), for routing by
 * name; the bytes themselves are passed on untouched by the caller. Incremental, bounded by {@link HEAD_MAX_BYTES},
 * and total: peer input never makes it throw; every outcome is a value. Pure.
 */

/** Most bytes of a request head read before a decision: a longer head is `oversized`. */
export const HEAD_MAX_BYTES = 16 * 1024;
/** The HTTP/2 connection preface's request line (RFC 9113 §3.4: `PRI * HTTP/2.0␍␊␍␊SM␍␊␍␊`). */
const H2_PREFACE_LINE = "PRI * HTTP/2.0";
/** Longest method accepted (the registered ones are ≤ 17 characters). */
const MAX_METHOD_CHARS = 32;

/** Why a head was not read: not an HTTP/1.x request head, too long, or a missing-or-bad Host (RFC 9112 §3.2: 400). */
export type HeadError = "malformed" | "oversized" | "bad_host";

/**
 * Outcome of {@link HttpHeadDecoder.push}: `more`, `head` with the host (lower case, without port or trailing dot;
 * null when the request names none: no Host, or an empty one), `h2_preface` (an HTTP/2 prior-knowledge client),
 * or `error`.
 */
export type HeadResult =
  | { readonly status: "more" }
  | { readonly status: "head"; readonly host: string | null }
  | { readonly status: "h2_preface" }
  | { readonly status: "error"; readonly error: HeadError };

const MORE: HeadResult = Object.freeze({ status: "more" });
const fail = (error: HeadError): HeadResult => ({ status: "error", error });

const TOKEN_CHAR = /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/(\d)\.(\d)$/;
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*$/;
/** reg-name (RFC 3986 §3.2.2) characters, and an IPv6 literal in brackets. */
const REG_NAME = /^[A-Za-z0-9._~!$&'()*+,;=%-]*$/;
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/;

/**
 * Feeds a visitor's first bytes until its request head is complete (an empty line). Only the head is examined
 * (a body or a pipelined request after it is not). Once a result other than `more` was returned, every later push
 * returns it again. Copies at most {@link HEAD_MAX_BYTES}; keeps no view of the chunks. Never throws.
 */
export class HttpHeadDecoder {
  private result: HeadResult = MORE;
  private buf: Uint8Array | null = null;
  private fill = 0;
  /** Where the search for the head's end goes on. */
  private scanned = 0;
  /** Empty-line bytes (CR, LF) before the request line so far: counted once, not at every read. */
  private lead = 0;

  push(chunk: Uint8Array): HeadResult {
    if (this.result.status !== "more" || chunk.length === 0) return this.result;
    if (this.buf === null) {
      // The common case without a copy: the whole head in the first read.
      const end = headEnd(chunk, 0, Math.min(chunk.length, HEAD_MAX_BYTES));
      if (end >= 0) return (this.result = parseHead(chunk.subarray(0, end)));
      this.buf = new Uint8Array(HEAD_MAX_BYTES);
    }
    const n = Math.min(chunk.length, HEAD_MAX_BYTES - this.fill);
    this.buf.set(chunk.subarray(0, n), this.fill);
    this.fill += n;
    if (this.lead === this.fill - n) this.lead = skipEmptyLines(this.buf, this.lead, this.fill);
    if (!methodPlausible(this.buf, this.fill, this.lead)) return (this.result = fail("malformed"));
    const end = headEnd(this.buf, Math.max(0, this.scanned - 3), this.fill, this.lead);
    this.scanned = this.fill;
    if (end >= 0) return (this.result = parseHead(this.buf.subarray(0, end)));
    if (this.fill >= HEAD_MAX_BYTES) this.result = fail("oversized");
    return this.result;
  }
}

/**
 * Index just past the empty line that ends the head in `b[from .. to)` (`␊␍␊` or `␊␊`: a bare LF ends a line too,
 * RFC 9112 §2.2), or -1. Leading empty lines before the request line (allowed, §2.2) do not end it.
 */
function headEnd(b: Uint8Array, from: number, to: number, start = skipEmptyLines(b, 0, to)): number {
  for (let i = Math.max(from, start); i < to; i++) {
    if (b[i] !== 0x0a) continue;
    if (i + 1 < to && b[i + 1] === 0x0a) return i + 2;
    if (i + 2 < to && b[i + 1] === 0x0d && b[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** Index of the first byte at or after `i` (below `n`) that is not CR or LF: where the request line starts. */
function skipEmptyLines(b: Uint8Array, i: number, n: number): number {
  while (i < n && (b[i] === 0x0d || b[i] === 0x0a)) i++;
  return i;
}

/** False as soon as the first bytes cannot start a request line (e.g. a TLS record): no waiting for a whole head. */
function methodPlausible(b: Uint8Array, n: number, start = skipEmptyLines(b, 0, n)): boolean {
  let i = start;
  for (; i < n && i - start <= MAX_METHOD_CHARS; i++) {
    const c = b[i] as number;
    if (c === 0x20) return i > start;
    if (!TOKEN_CHAR.test(String.fromCharCode(c))) return false;
  }
  return i - start <= MAX_METHOD_CHARS;
}

/** Parses a complete head (request line, field lines, the empty line). */
export function parseHead(head: Uint8Array): HeadResult {
  if (!methodPlausible(head, head.length)) return fail("malformed");
  const lines = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString("latin1").split("\n");
  let i = 0;
  while (i < lines.length && (lines[i] === "" || lines[i] === "\r")) i++;
  const requestLine = stripCr(lines[i++] ?? "");
  if (requestLine === H2_PREFACE_LINE) return { status: "h2_preface" };
  const m = REQUEST_LINE.exec(requestLine);
  if (m === null || m[3] !== "1") return fail("malformed");
  let host: string | null = null;
  let hosts = 0;
  for (; i < lines.length; i++) {
    const line = stripCr(lines[i] as string);
    if (line === "") break;
    const f = FIELD_LINE.exec(line);
    if (f === null) return fail("malformed"); // includes obs-fold and whitespace before the colon (§5.1, §5.2)
    if ((f[1] as string).toLowerCase() !== "host") continue;
    hosts++;
    host = f[2] as string;
  }
  if (hosts > 1) return fail("bad_host");
  // An absolute-form target names the host; Host is then ignored (RFC 9112 §3.2.2).
  const absolute = ABSOLUTE_FORM.exec(m[2] as string);
  if (absolute !== null) host = (absolute[1] as string).replace(/^.*@/, "");
  if (host === null) return { status: "head", host: null };
  const name = hostOfAuthority(host);
  return name === undefined ? fail("bad_host") : { status: "head", host: name };
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/**
 * `uri-host [":" port]` → the host in lower case without the port or one trailing dot (RFC 9110 §4.2.3, §7.2);
 * null for an empty authority, undefined when invalid.
 */
export function hostOfAuthority(authority: string): string | null | undefined {
  if (authority === "") return null;
  let host = authority;
  let port = "";
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return undefined;
    host = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    port = rest.slice(1);
    if (!IP_LITERAL.test(host)) return undefined;
  } else {
    const colon = authority.indexOf(":");
    if (colon >= 0) [host, port] = [authority.slice(0, colon), authority.slice(colon + 1)];
    if (!REG_NAME.test(host)) return undefined;
  }
  if (!/^\d{0,5}$/.test(port)) return undefined;
  host = host.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  return host === "" ? undefined : host;
}

const REASONS: Record<number, string> = { 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large" };

/**
 * A short, complete HTTP/1.1 error response that closes the connection, naming no internal detail (e.g.
 * `HTTP/1.1 404 Not Found` with the body `not found`). `status` is one of 400, 404, 431.
 */
export function httpErrorResponse(status: 400 | 404 | 431): Uint8Array {
  const reason = REASONS[status] as string;
  const body = `${reason.toLowerCase()}\n`;
  return new TextEncoder().encode(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * What a server that will not speak HTTP/2 answers a prior-knowledge client (RFC 9113 §3.4, §6.8, §7): its
 * preface, an empty SETTINGS frame, then GOAWAY with last stream 0 and HTTP_1_1_REQUIRED (0xd).
 */
export function h2GoAwayHttp11Required(): Uint8Array {
  return Uint8Array.of(
    0, 0, 0, 0x04, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 8, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d, // GOAWAY, length 8: last stream 0, HTTP_1_1_REQUIRED
  );
}
