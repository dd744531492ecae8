/** Client addresses behind trusted proxies (src/protocol/forwarded.ts): CIDR parsing and matching, XFF and Forwarded. */
import { describe, expect, test } from "bun:test";
import { addressBytes, clientAddress, inCidrs, parseCidr, type Cidr } from "../../src/protocol/forwarded.ts";

const cidrs = (...t: string[]): Cidr[] => t.map((x) => parseCidr(x) as Cidr);

describe("forwarded", () => {
  test("CIDR blocks: IPv4, IPv6, single addresses, IPv4-mapped IPv6; bad ones refused", () => {
    expect(inCidrs("10.1.2.3", cidrs("10.0.0.0/8"))).toBe(true);
    expect(inCidrs("11.1.2.3", cidrs("10.0.0.0/8"))).toBe(false);
    expect(inCidrs("192.0.2.7", cidrs("192.0.2.7"))).toBe(true);
    expect(inCidrs("192.0.2.8", cidrs("192.0.2.7"))).toBe(false);
    expect(inCidrs("::ffff:10.9.9.9", cidrs("10.0.0.0/8"))).toBe(true);
    expect(inCidrs("fd00::1", cidrs("fd00::/8"))).toBe(true);
    expect(inCidrs("fe80::1", cidrs("fd00::/8"))).toBe(false);
    expect(inCidrs("2001:db8:0:0:1::5", cidrs("2001:db8::/48"))).toBe(true);
    expect(inCidrs("1.2.3.4", cidrs("0.0.0.0/0"))).toBe(true);
    expect(inCidrs("not-an-ip", cidrs("0.0.0.0/0"))).toBe(false);
    for (const bad of ["10.0.0.0/33", "256.1.1.1", "::/129", "1.2.3.4/8/1", "host", "1:2:3:4:5:6:7:8:9", "1::2::3", "10.0.0.0/x"]) {
      expect(parseCidr(bad)).toBeNull();
    }
    expect(addressBytes("::ffff:1.2.3.4")).toEqual(addressBytes("1.2.3.4"));
  });

  const trusted = cidrs("127.0.0.1", "10.0.0.0/8");
  const f = (xff: string, forwarded = "") => ({ xForwardedFor: xff, forwarded });

  test("an untrusted peer's headers are ignored", () => {
    expect(clientAddress("192.0.2.1", trusted, f("203.0.113.9"))).toBe("192.0.2.1");
    expect(clientAddress("192.0.2.1", [], f("203.0.113.9"))).toBe("192.0.2.1");
  });

  test("from a trusted peer: the right-most address that is not a trusted proxy", () => {
    expect(clientAddress("127.0.0.1", trusted, f("203.0.113.9"))).toBe("203.0.113.9");
    expect(clientAddress("127.0.0.1", trusted, f("198.51.100.1, 203.0.113.9, 10.0.0.5"))).toBe("203.0.113.9");
    expect(clientAddress("127.0.0.1", trusted, f("10.0.0.6, 10.0.0.5"))).toBe("10.0.0.6");
    expect(clientAddress("127.0.0.1", trusted, f(""))).toBe("127.0.0.1");
    // Garbage in the chain: the peer is kept (never a forged name).
    expect(clientAddress("127.0.0.1", trusted, f("evil.example, 10.0.0.5"))).toBe("127.0.0.1");
  });

  test("Forwarded (RFC 7239) only without X-Forwarded-For (nginx passes a client's own through); quoted, bracketed, with ports", () => {
    expect(clientAddress("127.0.0.1", trusted, f("198.51.100.1", 'for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"'))).toBe("198.51.100.1");
    expect(clientAddress("127.0.0.1", trusted, f("", 'for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"'))).toBe("2001:db8::1");
    expect(clientAddress("127.0.0.1", trusted, f("", "for=192.0.2.43:8080"))).toBe("192.0.2.43");
    expect(clientAddress("127.0.0.1", trusted, f("", "for=_hidden"))).toBe("127.0.0.1");
  });
});
