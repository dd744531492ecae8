/** CONTROL messages of the aside connection (SPEC.md §4): encode/decode and what is refused. */
import { describe, expect, test } from "bun:test";
import { isTunnelError } from "../../src/errors.ts";
import { type ControlMessage, MAX_CONTROL_BYTES, decodeControl, encodeControl } from "../../src/protocol/control.ts";
import { MAX_CONTROL_MESSAGE_BYTES } from "../../src/protocol/constants.ts";

const text = (s: string) => new TextEncoder().encode(s);

describe("CONTROL messages", () => {
  test.each<ControlMessage>([
    { type: "drain", connection_ids: [] },
    { type: "drain", connection_ids: ["k7", "k8"] },
    { type: "weight", weight: 1 },
    { type: "weight", weight: 100 },
    { type: "drained", connection_id: "k7" },
  ])("%p round-trips", (msg) => {
    expect(decodeControl(encodeControl(msg))).toEqual(msg);
  });

  test.each([
    ["not JSON", "{"],
    ["invalid UTF-8", "\xff"],
    ["weight 0", '{"type":"weight","weight":0}'],
    ["weight 1.5", '{"type":"weight","weight":1.5}'],
    ["empty connection id", '{"type":"drained","connection_id":""}'],
    ["an array", "[]"],
  ])("%s → null", (_n, body) => {
    const bytes = body === "\xff" ? Uint8Array.of(0x7b, 0xff, 0x7d) : text(body);
    expect(decodeControl(bytes)).toBeNull();
  });

  test("forward compatible: unknown keys are dropped, unknown types decode as unknown (ignored)", () => {
    expect(decodeControl(text('{"type":"weight","weight":5,"x":1}'))).toEqual({ type: "weight", weight: 5 });
    expect(decodeControl(text('{"type":"reboot","now":true}'))).toEqual({ type: "unknown" });
    expect(decodeControl(text('{"type":5}'))).toBeNull();
  });

  test("size limit: the frame codec's, enforced both ways", () => {
    expect(MAX_CONTROL_BYTES).toBe(MAX_CONTROL_MESSAGE_BYTES);
    const ids = Array.from({ length: 256 }, (_, i) => `${i}`.padEnd(128, "x"));
    let thrown: unknown;
    try {
      encodeControl({ type: "drain", connection_ids: ids });
    } catch (e) {
      thrown = e;
    }
    expect(isTunnelError(thrown, "ERR_INTERNAL")).toBe(true);
    expect(decodeControl(new Uint8Array(MAX_CONTROL_BYTES + 1).fill(0x20))).toBeNull();
  });
});
