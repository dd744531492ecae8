/** OPEN payload codec (SPEC.md §2.1): service name, visitor address and port, route address and port. Pure. */
import {
  MAX_ADDRESS_TEXT_BYTES,
  MAX_OPEN_PAYLOAD_BYTES,
  MAX_SERVICE_NAME_BYTES,
  MIN_OPEN_PAYLOAD_BYTES,
} from "./constants.ts";
import type { OpenPayload } from "./frames.ts";

/** 1 for bytes allowed in a service name: ASCII `[A-Za-z0-9._-]`. */
const SERVICE_BYTE = new Uint8Array(256);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9._-]/.test(ch)) SERVICE_BYTE[c] = 1;
}

/** True if `b` may appear in an OPEN address text: printable ASCII without space (0x21..0x7E). */
function isAddressByte(b: number): boolean {
  return b >= 0x21 && b <= 0x7e;
}

/** True if `s` is a valid service name: 1..255 characters of `[A-Za-z0-9._-]`. */
export function isValidServiceName(s: string): boolean {
  if (s.length < 1 || s.length > MAX_SERVICE_NAME_BYTES) return false;
  for (let i = 0; i < s.length; i++) if (SERVICE_BYTE[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** True if `s` is a valid OPEN address text: 0..45 printable ASCII characters (0x21..0x7E). */
export function isValidAddressText(s: string): boolean {
  if (s.length > MAX_ADDRESS_TEXT_BYTES) return false;
  for (let i = 0; i < s.length; i++) if (!isAddressByte(s.charCodeAt(i))) return false;
  return true;
}

/** True if `p` is an integer port 0..65535 (0 means unknown). */
export function isValidPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 0xffff;
}

/** True if every field of `open` is encodable (see the per-field predicates above). */
export function isValidOpenPayload(open: OpenPayload): boolean {
  return (
    isValidServiceName(open.service) &&
    isValidAddressText(open.visitorAddress) &&
    isValidPort(open.visitorPort) &&
    isValidAddressText(open.routeAddress) &&
    isValidPort(open.routePort)
  );
}

/** Encoded size of a valid OPEN payload, bytes (MIN_OPEN_PAYLOAD_BYTES..MAX_OPEN_PAYLOAD_BYTES). */
export function openPayloadBytes(open: OpenPayload): number {
  return MIN_OPEN_PAYLOAD_BYTES - 1 + open.service.length + open.visitorAddress.length + open.routeAddress.length;
}

function writeText(buf: Uint8Array, o: number, s: string): number {
  buf[o++] = s.length;
  for (let i = 0; i < s.length; i++) buf[o++] = s.charCodeAt(i);
  return o;
}

/**
 * Writes a valid OPEN payload (caller checked {@link isValidOpenPayload}) into `buf` at `o`; returns the offset
 * after it. The caller reserved {@link openPayloadBytes} bytes.
 */
export function writeOpenPayload(buf: Uint8Array, o: number, open: OpenPayload): number {
  o = writeText(buf, o, open.service);
  o = writeText(buf, o, open.visitorAddress);
  buf[o++] = open.visitorPort >>> 8;
  buf[o++] = open.visitorPort & 0xff;
  o = writeText(buf, o, open.routeAddress);
  buf[o++] = open.routePort >>> 8;
  buf[o++] = open.routePort & 0xff;
  return o;
}

function readText(buf: Uint8Array, o: number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(buf[o + i] as number);
  return s;
}

/**
 * Parses the OPEN payload at `buf[o .. o+len)`. Returns null if it is malformed: a length byte pointing past the
 * payload, a service name empty, longer than 255 or with a byte outside `[A-Za-z0-9._-]`, an address text longer
 * than 45 or with a byte outside 0x21..0x7E, or trailing bytes. Never throws; the strings are copies.
 */
export function readOpenPayload(buf: Uint8Array, o: number, len: number): OpenPayload | null {
  if (len < MIN_OPEN_PAYLOAD_BYTES || len > MAX_OPEN_PAYLOAD_BYTES) return null;
  const end = o + len;
  const sLen = buf[o] as number;
  if (sLen === 0 || o + 1 + sLen + 1 > end) return null;
  for (let i = o + 1; i < o + 1 + sLen; i++) if (SERVICE_BYTE[buf[i] as number] !== 1) return null;
  const service = readText(buf, o + 1, sLen);
  let p = o + 1 + sLen;
  const visitor = readAddress(buf, p, end);
  if (visitor === null) return null;
  p += 1 + visitor.length + 2;
  const route = readAddress(buf, p, end);
  if (route === null) return null;
  p += 1 + route.length + 2;
  if (p !== end) return null;
  return {
    service,
    visitorAddress: visitor,
    visitorPort: readPort(buf, o + 1 + sLen + 1 + visitor.length),
    routeAddress: route,
    routePort: readPort(buf, p - 2),
  };
}

/** Reads `len, text, port(2)` at `p`: the text, or null if it runs past `end` or is not a valid address text. */
function readAddress(buf: Uint8Array, p: number, end: number): string | null {
  if (p >= end) return null;
  const n = buf[p] as number;
  if (n > MAX_ADDRESS_TEXT_BYTES || p + 1 + n + 2 > end) return null;
  for (let i = p + 1; i < p + 1 + n; i++) if (!isAddressByte(buf[i] as number)) return null;
  return readText(buf, p + 1, n);
}

function readPort(buf: Uint8Array, o: number): number {
  return ((buf[o] as number) << 8) | (buf[o + 1] as number);
}
