/**
 * The client address behind trusted reverse proxies: `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only
 * when the connection comes from a configured proxy (TUNNEL_TRUSTED_PROXIES), and then only up to the first
 * address that is not itself a trusted proxy (read from the right: every proxy appends, a client can forge only the
 * left). Pure.
 */

/** A CIDR block: an address as 16 bytes (IPv4 as IPv4-mapped IPv6) and a prefix length over those 128 bits. */
export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
  /** As written, for logs. */
  text: string;
}

/** The 16 bytes of an IPv4 or IPv6 address (IPv4 and IPv4-mapped IPv6 alike), or null if it is not one. */
export function addressBytes(ip: string): Uint8Array | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (v4) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    for (let i = 0; i < 4; i++) {
      const n = Number(v4[i + 1]);
      if (n > 255) return null;
      out[12 + i] = n;
    }
    return out;
  }
  return ipv6Bytes(ip);
}

function ipv6Bytes(ip: string): Uint8Array | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(ip) || ip.split("::").length > 2) return null;
  let tail: number[] = [];
  let text = ip;
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (dotted) {
    const v4 = addressBytes(dotted[2] as string);
    if (v4 === null) return null;
    tail = [...v4.subarray(12)];
    text = `${dotted[1]}0:0`; // two placeholder groups, replaced below
  }
  const [head = "", rest] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const missing = 8 - left.length - right.length;
  if ((rest === undefined && missing !== 0) || (rest !== undefined && missing < 1)) return null;
  const groups = [...left, ...Array<string>(rest === undefined ? 0 : missing).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (let g = 0; g < 8; g++) {
    const s = groups[g] as string;
    if (!/^[0-9A-Fa-f]{1,4}$/.test(s)) return null;
    const n = parseInt(s, 16);
    out[2 * g] = n >> 8;
    out[2 * g + 1] = n & 0xff;
  }
  if (dotted) out.set(tail, 12);
  return out;
}

/** Parses `a.b.c.d[/n]` or `ipv6[/n]` (no prefix: one address). Returns null if it is not a CIDR block. */
export function parseCidr(text: string): Cidr | null {
  const [addr = "", len, extra] = text.split("/");
  if (extra !== undefined) return null;
  const bytes = addressBytes(addr);
  if (bytes === null) return null;
  const v4 = addr.includes(".") && !addr.includes(":");
  const max = v4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return null;
  const n = len === undefined ? max : Number(len);
  if (n > max) return null;
  return { bytes, prefix: v4 ? n + 96 : n, text };
}

/** True if `ip` lies in one of `blocks`. */
export function inCidrs(ip: string, blocks: readonly Cidr[]): boolean {
  const b = addressBytes(ip);
  if (b === null) return false;
  return blocks.some((c) => {
    for (let bit = 0; bit < c.prefix; bit += 8) {
      const bits = Math.min(8, c.prefix - bit);
      const mask = (0xff << (8 - bits)) & 0xff;
      if (((b[bit >> 3] as number) & mask) !== ((c.bytes[bit >> 3] as number) & mask)) return false;
    }
    return true;
  });
}

/** The addresses a `Forwarded` field lists in its `for=` parameters, in order (obfuscated ones as written). */
function forwardedFor(value: string): string[] {
  const out: string[] = [];
  for (const element of value.split(",")) {
    for (const pair of element.split(";")) {
      const m = /^\s*for\s*=\s*(.*?)\s*$/i.exec(pair);
      if (!m) continue;
      let v = (m[1] as string).replace(/^"(.*)"$/, "$1");
      const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(v);
      if (bracket) v = bracket[1] as string;
      else if (/^[^:]+:\d+$/.test(v)) v = v.replace(/:\d+$/, "");
      out.push(v);
    }
  }
  return out;
}

/**
 * The client's address: `peer` itself unless `peer` is in `trusted`; then the right-most address of `X-Forwarded-For`
 * (preferred when present) or `Forwarded` that is not in `trusted` (or the left-most, if all are). A value
 * that is not an IP address ends the walk: `peer` is kept. Never throws.
 */
export function clientAddress(peer: string, trusted: readonly Cidr[], fields: { forwarded: string; xForwardedFor: string }): string {
  if (trusted.length === 0 || !inCidrs(peer, trusted)) return peer;
  // X-Forwarded-For first: the proxies in front of us (nginx, ingress-nginx) append to it and pass a client's own
  // Forwarded field through untouched, so preferring Forwarded let an agent choose its address.
  const xff = fields.xForwardedFor.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const chain = xff.length > 0 ? xff : forwardedFor(fields.forwarded);
  let client = peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = chain[i] as string;
    if (addressBytes(hop) === null) return peer;
    client = hop;
    if (!inCidrs(hop, trusted)) break;
  }
  return client;
}
