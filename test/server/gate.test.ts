/** The gate's penalties count IPv6 sources by /64 (issue 14): a host cannot dodge them by changing its address. */
import { describe, expect, test } from "bun:test";
import { AuthPenalties, penaltySource } from "../../src/server/gate.ts";

describe("penaltySource", () => {
  test.each([
    ["192.0.2.7", "192.0.2.7"],
    ["::ffff:192.0.2.7", "192.0.2.7"],
    ["2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
    ["2001:0DB8:0001:0002::", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1:2:3:4", "fe80:0:0:0::/64"],
    ["not-an-address", "not-an-address"],
  ])("%s counts as %s", (ip, want) => {
    expect(penaltySource(ip)).toBe(want);
  });
});

test("failures from different addresses of one IPv6 /64 add up to one penalty; another /64 is not refused", () => {
  let now = 1_000_000;
  const p = new AuthPenalties({ authFailureLimit: 3, authFailureWindowMs: 10_000, authPenaltyMs: 1_000, authPenaltyMaxMs: 8_000 }, () => now);
  expect(p.failure("2001:db8:1:2::a")).toBe(0);
  expect(p.failure("2001:db8:1:2::b")).toBe(0);
  expect(p.failure("2001:db8:1:2:ffff::c")).toBe(1_000);
  expect(p.remainingMs("2001:db8:1:2::dead:beef")).toBe(1_000);
  expect(p.remainingMs("2001:db8:1:3::a")).toBe(0);
  now += 1_001;
  expect(p.remainingMs("2001:db8:1:2::a")).toBe(0);
});
