/**
 * PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2) that an agent writes to a target before
 * any stream data, so the target sees the visitor's address instead of the agent's. Pure: text in, bytes out.
 *
 * Source is the visitor, destination the route listener the visitor reached (both from the stream's OPEN). An
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as dual-stack listeners report IPv4 visitors) counts as IPv4; when
 * one side is IPv4 and the other IPv6, the IPv4 one is sent mapped, since a header has one family. A missing or
 * unparseable address, a zone id, or port 0 (unknown) gives `PROXY UNKNOWN` (v1) or a LOCAL header (v2), which
 * receivers accept and then use the connection's own addresses.
 */

/** Who connected to whom, as text addresses and ports (0: unknown). */
export interface ProxyAddresses {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

/** The 12-byte version 2 signature. */
export const PROXY_V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** A parsed IP address: 4 or 16 bytes. */
export type IpBytes = Uint8Array;

/** Parses dotted-quad IPv4 text (no leading zeros, each part 0..255); null otherwise. */
export function parseIPv4(text: string): IpBytes | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return null;
    out[i] = Number(p);
  }
  return out;
}

/** Parses IPv6 text (RFC 4291 §2.2: `::` once, an IPv4 tail allowed); null otherwise (zone ids included). */
export function parseIPv6(text: string): IpBytes | null {
  if (text.length < 2 || text.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  // An IPv4 tail may only end the address (so not before a `::`).
  const groups = (s: string, v4Tail: boolean): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (v4Tail && i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (v4 === null) return null;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0] as string, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1] as string, true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >>> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** IPv4 for IPv4 text or an IPv4-mapped IPv6 address, IPv6 for other IPv6 text, null for anything else. */
export function parseIp(text: string): IpBytes | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return v4;
  const v6 = parseIPv6(text);
  if (v6 === null) return null;
  return isMapped(v6) ? v6.slice(12) : v6;
}

function isMapped(v6: IpBytes): boolean {
  return v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
}

/** `::ffff:a.b.c.d` as 16 bytes. */
function mapped(v4: IpBytes): IpBytes {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/**
 * Text form: dotted quad, or RFC 5952 IPv6 (lower case, the longest run of two or more zero groups as `::`,
 * IPv4-mapped addresses as `::ffff:a.b.c.d`).
 */
export function formatIp(ip: IpBytes): string {
  if (ip.length === 4) return ip.join(".");
  if (isMapped(ip)) return `::ffff:${ip.subarray(12).join(".")}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((ip[i] as number) << 8) | (ip[i + 1] as number));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Both endpoints as addresses of one family, or null if either is unknown. */
function endpoints(a: ProxyAddresses): { src: IpBytes; dst: IpBytes } | null {
  if (!validPort(a.sourcePort) || !validPort(a.destinationPort)) return null;
  let src = parseIp(a.sourceAddress);
  let dst = parseIp(a.destinationAddress);
  if (src === null || dst === null) return null;
  if (src.length !== dst.length) {
    if (src.length === 4) src = mapped(src);
    else dst = mapped(dst);
  }
  return { src, dst };
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 0xffff;
}

/** A version 1 (text) header: `PROXY TCP4|TCP6 src dst sport dport\r\n`, or `PROXY UNKNOWN\r\n`. At most 107 bytes. */
export function proxyHeaderV1(a: ProxyAddresses): Uint8Array {
  const e = endpoints(a);
  const line = e === null
    ? "PROXY UNKNOWN\r\n"
    : `PROXY TCP${e.src.length === 4 ? 4 : 6} ${formatIp(e.src)} ${formatIp(e.dst)} ${a.sourcePort} ${a.destinationPort}\r\n`;
  return new TextEncoder().encode(line);
}

/**
 * A version 2 (binary) header: signature, version 2 + PROXY, TCP over IPv4 (0x11) or IPv6 (0x21), the address
 * block length, then source address, destination address, source port, destination port. LOCAL with family
 * UNSPEC and no address block when an endpoint is unknown. 28 bytes for IPv4, 52 for IPv6, 16 for LOCAL.
 */
export function proxyHeaderV2(a: ProxyAddresses): Uint8Array {
  const e = endpoints(a);
  const n = e === null ? 0 : e.src.length * 2 + 4;
  const out = new Uint8Array(16 + n);
  out.set(PROXY_V2_SIGNATURE, 0);
  if (e === null) {
    out[12] = 0x20; // version 2, LOCAL
    out[13] = 0x00; // UNSPEC
    return out;
  }
  out[12] = 0x21; // version 2, PROXY
  out[13] = e.src.length === 4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  out[14] = n >>> 8;
  out[15] = n & 0xff;
  out.set(e.src, 16);
  out.set(e.dst, 16 + e.src.length);
  const p = 16 + 2 * e.src.length;
  out[p] = a.sourcePort >>> 8;
  out[p + 1] = a.sourcePort & 0xff;
  out[p + 2] = a.destinationPort >>> 8;
  out[p + 3] = a.destinationPort & 0xff;
  return out;
}

/** The header of `version` for a stream's OPEN (visitor → route). */
export function proxyHeader(
  version: "v1" | "v2",
  open: { visitorAddress: string; visitorPort: number; routeAddress: string; routePort: number },
): Uint8Array {
  const a: ProxyAddresses = {
    sourceAddress: open.visitorAddress,
    sourcePort: open.visitorPort,
    destinationAddress: open.routeAddress,
    destinationPort: open.routePort,
  };
  return version === "v1" ? proxyHeaderV1(a) : proxyHeaderV2(a);
}
