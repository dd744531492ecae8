/**
 * ClientHello bytes for tests: the captured fixtures (test/fixtures/client-hello/, made by
 * scripts/capture-client-hello.ts), a builder for synthetic ones, and re-framing of a handshake message into
 * records of chosen sizes (legal TLS fragmentation, RFC 8446 §5.1).
 */
import { readFileSync } from "node:fs";

const DIR = new URL("../fixtures/client-hello/", import.meta.url).pathname;

/** The captured ClientHellos and the server name each asked for (null: none sent). */
export const FIXTURES: readonly { file: string; client: string; serverName: string | null }[] = [
  { file: "curl.bin", client: "curl 7.88.1 (OpenSSL 3.0.19), TLS 1.3", serverName: "app.example.com" },
  { file: "curl-tls12.bin", client: "curl --tls-max 1.2", serverName: "app.example.com" },
  { file: "curl-ip-no-sni.bin", client: "curl to an IP address (no SNI)", serverName: null },
  { file: "openssl.bin", client: "openssl s_client 3.0.19 -servername", serverName: "app.example.com" },
  { file: "openssl-tls12.bin", client: "openssl s_client -tls1_2", serverName: "app.example.com" },
  { file: "openssl-noservername.bin", client: "openssl s_client -noservername", serverName: null },
  { file: "chromium.bin", client: "Chromium 156 headless (GREASE, ECH GREASE, ML-KEM key share)", serverName: "app.example.com" },
];

/** A fixture's bytes. */
export function fixture(file: string): Uint8Array {
  return new Uint8Array(readFileSync(DIR + file));
}

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

/** An extension: type, then its data with a 2-byte length. */
export function ext(type: number, data: Uint8Array | number[]): Uint8Array {
  return Uint8Array.from([...u16(type), ...u16(data.length), ...data]);
}

/** server_name extension data with the given (name_type, name) entries. */
export function serverNameExt(entries: [number, string | Uint8Array][]): Uint8Array {
  const list = entries.flatMap(([t, n]) => {
    const b = typeof n === "string" ? [...new TextEncoder().encode(n)] : [...n];
    return [t, ...u16(b.length), ...b];
  });
  return ext(0, [...u16(list.length), ...list]);
}

/** A ClientHello handshake message (type, uint24 length, body) with `extensions` (null: no extensions block). */
export function helloMessage(extensions: Uint8Array[] | null, opts: { sessionId?: number } = {}): Uint8Array {
  const sid = opts.sessionId ?? 32;
  const body = [0x03, 0x03, ...new Array<number>(32).fill(7), sid, ...new Array<number>(sid).fill(1),
    ...u16(2), 0x13, 0x01, 1, 0];
  if (extensions !== null) {
    const all = extensions.flatMap((e) => [...e]);
    body.push(...u16(all.length), ...all);
  }
  return Uint8Array.from([0x01, ...u24(body.length), ...body]);
}

/** `message` framed as handshake records of `sizes` bytes each (the last size repeats). */
export function records(message: Uint8Array, sizes: number[] = [16_384]): Uint8Array {
  const out: number[] = [];
  let i = 0;
  for (let k = 0; i < message.length; k++) {
    const n = Math.min(sizes[Math.min(k, sizes.length - 1)] as number, message.length - i);
    out.push(0x16, 0x03, k === 0 ? 0x01 : 0x03, ...u16(n), ...message.subarray(i, i + n));
    i += n;
  }
  return Uint8Array.from(out);
}

/** The handshake message inside `hello` (a fixture: one or more records), records removed. */
export function messageOf(hello: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let p = 0; p + 5 <= hello.length; ) {
    const len = ((hello[p + 3] as number) << 8) | (hello[p + 4] as number);
    out.push(...hello.subarray(p + 5, p + 5 + len));
    p += 5 + len;
  }
  const msgLen = ((out[1] as number) << 16) | ((out[2] as number) << 8) | (out[3] as number);
  return Uint8Array.from(out.slice(0, 4 + msgLen));
}
