/** PROXY protocol encoder against the byte layouts of HAProxy's proxy-protocol.txt (v1 §2.1, v2 §2.2). */
import { describe, expect, test } from "bun:test";
import {
  PROXY_V2_SIGNATURE,
  formatIp,
  parseIp,
  parseIPv6,
  proxyHeader,
  proxyHeaderV1,
  proxyHeaderV2,
  type ProxyAddresses,
} from "../../src/agent/proxy-protocol.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const hex = (s: string) => Uint8Array.from(s.replace(/#.*$/gm, "").trim().split(/\s+/).map((x) => parseInt(x, 16)));
const addrs = (sourceAddress: string, sourcePort: number, destinationAddress: string, destinationPort: number): ProxyAddresses =>
  ({ sourceAddress, sourcePort, destinationAddress, destinationPort });

describe("v1", () => {
  test("the spec's TCP4 example", () => {
    expect(text(proxyHeaderV1(addrs("192.168.0.1", 56324, "192.168.0.11", 443)))).toBe(
      "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    );
  });

  test("the longest TCP4 and TCP6 lines (56 and 104 bytes; the spec's limit is 107)", () => {
    const v4 = proxyHeaderV1(addrs("255.255.255.255", 65535, "255.255.255.255", 65535));
    expect(text(v4)).toBe("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
    expect(v4.byteLength).toBe(56);
    const full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const v6 = proxyHeaderV1(addrs(full, 65535, full.toUpperCase(), 65535));
    expect(text(v6)).toBe(`PROXY TCP6 ${full} ${full} 65535 65535\r\n`);
    expect(v6.byteLength).toBe(104);
  });

  test("TCP6 writes RFC 5952 text", () => {
    expect(text(proxyHeaderV1(addrs("2001:DB8:0:0:0:0:0:1", 40000, "2001:db8::a", 2222)))).toBe(
      "PROXY TCP6 2001:db8::1 2001:db8::a 40000 2222\r\n",
    );
  });

  test("an IPv4-mapped visitor on an IPv4 route is TCP4; IPv4 with IPv6 is sent as TCP6, mapped", () => {
    expect(text(proxyHeaderV1(addrs("::ffff:203.0.113.7", 51000, "198.51.100.1", 443)))).toBe(
      "PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n",
    );
    expect(text(proxyHeaderV1(addrs("203.0.113.7", 51000, "2001:db8::1", 443)))).toBe(
      "PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 51000 443\r\n",
    );
  });

  test("UNKNOWN when an address or port is missing or not an IP address", () => {
    for (const a of [
      addrs("", 0, "198.51.100.1", 443),
      addrs("203.0.113.7", 0, "198.51.100.1", 443),
      addrs("203.0.113.7", 51000, "", 0),
      addrs("203.0.113.7", 51000, "198.51.100.1", 0),
      addrs("fe80::1%eth0", 51000, "fe80::2", 443),
      addrs("example.com", 51000, "198.51.100.1", 443),
      addrs("203.0.113.7\r\nX", 51000, "198.51.100.1", 443),
      addrs("203.0.113.07", 51000, "198.51.100.1", 443),
    ]) {
      expect(text(proxyHeaderV1(a))).toBe("PROXY UNKNOWN\r\n");
    }
  });
});

describe("v2", () => {
  test("TCP over IPv4: 16-byte header + 12-byte address block", () => {
    const got = proxyHeaderV2(addrs("192.168.0.1", 56324, "192.168.0.11", 443));
    expect(got).toEqual(hex(`
      0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A   # signature
      21                                    # version 2, command PROXY
      11                                    # AF_INET, STREAM
      00 0C                                 # 12 address bytes follow
      C0 A8 00 01                           # source 192.168.0.1
      C0 A8 00 0B                           # destination 192.168.0.11
      DC 04                                 # source port 56324
      01 BB                                 # destination port 443
    `));
  });

  test("TCP over IPv6: 16-byte header + 36-byte address block", () => {
    const got = proxyHeaderV2(addrs("2001:db8::1", 40000, "2001:db8:0:0:1::2", 2222));
    expect(got).toEqual(hex(`
      0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
      21 21 00 24                                        # PROXY, AF_INET6 + STREAM, 36 bytes
      20 01 0D B8 00 00 00 00 00 00 00 00 00 00 00 01    # 2001:db8::1
      20 01 0D B8 00 00 00 00 00 01 00 00 00 00 00 02    # 2001:db8::1:0:0:2
      9C 40 08 AE                                        # ports 40000, 2222
    `));
  });

  test("LOCAL with UNSPEC and no address block when the visitor's address is unknown", () => {
    const got = proxyHeaderV2(addrs("", 0, "198.51.100.1", 443));
    expect(got).toEqual(hex("0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A 20 00 00 00"));
    expect(got.subarray(0, 12)).toEqual(PROXY_V2_SIGNATURE);
  });

  test("mixed families are sent as IPv6 with the IPv4 address mapped", () => {
    const got = proxyHeaderV2(addrs("2001:db8::1", 1, "10.0.0.1", 2));
    expect(got[13]).toBe(0x21);
    expect(got.subarray(32, 48)).toEqual(hex("00 00 00 00 00 00 00 00 00 00 FF FF 0A 00 00 01"));
  });
});

test("proxyHeader maps an OPEN: visitor → source, route → destination", () => {
  const open = { visitorAddress: "203.0.113.7", visitorPort: 51000, routeAddress: "198.51.100.1", routePort: 443 };
  expect(text(proxyHeader("v1", open))).toBe("PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n");
  expect(proxyHeader("v2", open).byteLength).toBe(28);
});

describe("addresses", () => {
  test("IPv6 parsing: compression, IPv4 tails, and what is refused", () => {
    expect(formatIp(parseIPv6("::") as Uint8Array)).toBe("::");
    expect(formatIp(parseIPv6("::1") as Uint8Array)).toBe("::1");
    expect(formatIp(parseIPv6("1::") as Uint8Array)).toBe("1::");
    expect(formatIp(parseIPv6("1:0:0:2:0:0:0:3") as Uint8Array)).toBe("1:0:0:2::3");
    expect(formatIp(parseIPv6("1:0:2:3:4:5:6:7") as Uint8Array)).toBe("1:0:2:3:4:5:6:7"); // one zero group stays
    expect(formatIp(parseIPv6("64:ff9b::192.0.2.33") as Uint8Array)).toBe("64:ff9b::c000:221");
    for (const bad of ["", ":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "1.2.3.4::",
      "::1.2.3", "g::1", "::1%lo", "1:2:3:4:5:6:7::8:9"]) {
      expect(parseIPv6(bad)).toBeNull();
    }
  });

  test("IPv4 and mapped IPv4 parse to 4 bytes", () => {
    expect(parseIp("0.0.0.0")).toEqual(new Uint8Array(4));
    expect(parseIp("::ffff:127.0.0.1")).toEqual(Uint8Array.of(127, 0, 0, 1));
    expect(parseIp("::FFFF:7f00:1")).toEqual(Uint8Array.of(127, 0, 0, 1));
    for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", " 1.2.3.4", "1.2.3.-4"]) expect(parseIp(bad)).toBeNull();
  });
});
