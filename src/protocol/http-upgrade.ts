/**
 * The HTTP/1.1 heads around the WebSocket binding (SPEC.md §8): the agent's upgrade request and an HTTP CONNECT
 * to a proxy, the server's answers, and a bounded reader for a head arriving in pieces. Pure: no I/O; peer input
 * never makes it throw (a head that does not parse is null).
 */

/** Longest request or response head read (bytes up to and including the blank line). */
export const UPGRADE_HEAD_MAX_BYTES = 8 * 1024;

/** A parsed head: the first line split up, and the fields by lower-case name (repeated fields keep every value). */
export interface HttpHead {
  /** Request: the method; response: the HTTP version. */
  first: string;
  /** Request: the target; response: the status code. */
  second: string;
  /** Request: the version; response: the reason phrase. */
  third: string;
  /** The first line as received (for logs: a proxy's status line). */
  line: string;
  fields: Map<string, string[]>;
}

/** Outcome of {@link HeadReader.push}: more bytes needed, the head (and the bytes after it), or too long. */
export type HeadRead = { kind: "more" } | { kind: "head"; head: string; rest: Uint8Array } | { kind: "oversized" };

/** Collects bytes until the blank line that ends an HTTP head, at most {@link UPGRADE_HEAD_MAX_BYTES}. */
export class HeadReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): HeadRead {
    const joined = new Uint8Array(this.buf.byteLength + chunk.byteLength);
    joined.set(this.buf);
    joined.set(chunk, this.buf.byteLength);
    const from = Math.max(0, this.buf.byteLength - 3);
    const limit = Math.min(joined.byteLength, UPGRADE_HEAD_MAX_BYTES);
    for (let i = from; i + 3 < limit; i++) {
      if (joined[i] === 13 && joined[i + 1] === 10 && joined[i + 2] === 13 && joined[i + 3] === 10) {
        const head = new TextDecoder("latin1").decode(joined.subarray(0, i));
        return { kind: "head", head, rest: joined.subarray(i + 4) };
      }
    }
    if (joined.byteLength >= UPGRADE_HEAD_MAX_BYTES) return { kind: "oversized" };
    this.buf = joined;
    return { kind: "more" };
  }
}

const FIELD = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

/** Splits a head (without its blank line) into its first line and fields; null if it is not HTTP/1.x shaped. */
export function parseHead(head: string): HttpHead | null {
  const lines = head.split("\r\n");
  const line = lines[0] ?? "";
  const m = /^(\S+) (\S+)(?: (.*))?$/.exec(line);
  if (!m) return null;
  const fields = new Map<string, string[]>();
  for (const l of lines.slice(1)) {
    const f = FIELD.exec(l);
    if (!f) return null;
    const name = (f[1] as string).toLowerCase();
    const list = fields.get(name) ?? [];
    list.push(f[2] as string);
    fields.set(name, list);
  }
  return { first: m[1] as string, second: m[2] as string, third: m[3] ?? "", line, fields };
}

/** The values of a field joined with ", " (RFC 9110 §5.3), or "" when absent. */
export function field(head: HttpHead, name: string): string {
  return (head.fields.get(name) ?? []).join(", ");
}

/** True if a comma-separated field lists `token` (case-insensitive), as `Connection: keep-alive, Upgrade`. */
export function hasToken(head: HttpHead, name: string, token: string): boolean {
  return field(head, name).split(",").some((t) => t.trim().toLowerCase() === token);
}

/** The agent's upgrade request (RFC 6455 §4.1). `host` is the authority (`name[:port]`). */
export function upgradeRequest(host: string, path: string, key: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: backchannel\r\n\r\n`;
}

/** The server's 101 (RFC 6455 §4.2.2). */
export function switchingProtocols(accept: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

/** A short refusal that closes the connection; `extra` fields (e.g. `Retry-After: 2`) go before the body. */
export function httpRefusal(status: number, reason: string, extra: readonly string[] = []): string {
  const body = `${reason.toLowerCase()}\n`;
  return [`HTTP/1.1 ${status} ${reason}`, "Content-Type: text/plain", `Content-Length: ${body.length}`, "Connection: close", ...extra, "", body].join("\r\n");
}

/** An HTTP CONNECT to a proxy (RFC 9110 §9.3.6), with Basic proxy authentication when `basic` is set (base64). */
export function connectRequest(authority: string, basic: string | null): string {
  const auth = basic === null ? "" : `Proxy-Authorization: Basic ${basic}\r\n`;
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}User-Agent: backchannel\r\n\r\n`;
}
