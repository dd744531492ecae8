/** Wire constants: the values SPEC.md fixes, and wireCodeName. */
import { expect, test } from "bun:test";
import * as C from "../../src/protocol/constants.ts";

test("limits are the ones SPEC.md states", () => {
  expect(C.MAX_OPEN_PAYLOAD_BYTES).toBe(352);
  expect(C.MAX_CONTROL_MESSAGE_BYTES).toBe(16384);
  expect(C.MAX_CONTROL_PAYLOAD_BYTES).toBe(16384);
  expect(C.MIN_OPEN_PAYLOAD_BYTES).toBe(8);
  expect(C.MAX_STREAM_ID).toBe(2147483647);
  expect(C.MAX_WINDOW_BYTES).toBe(2147483647);
  expect(C.FRAME_HEADER_BYTES).toBe(10);
  expect(C.HANDSHAKE_HEADER_BYTES).toBe(8);
  expect(C.MIN_MAX_FRAME_BYTES).toBeLessThanOrEqual(C.DEFAULT_MAX_FRAME_BYTES);
  expect(C.DEFAULT_MAX_FRAME_BYTES).toBeLessThanOrEqual(C.MAX_MAX_FRAME_BYTES);
  expect(C.DEFAULT_HANDSHAKE_MAX_BODY_BYTES).toBeLessThanOrEqual(C.HANDSHAKE_MAX_BODY_LIMIT);
});

test("wireCodeName names known codes and marks unknown ones", () => {
  expect(C.wireCodeName(0)).toBe("NO_ERROR");
  expect(C.wireCodeName(C.WireCode.ENHANCE_YOUR_CALM)).toBe("ENHANCE_YOUR_CALM");
  for (const [name, code] of Object.entries(C.WireCode)) expect(C.wireCodeName(code)).toBe(name);
  expect(C.wireCodeName(C.WireCode.IDLE_TIMEOUT)).toBe("IDLE_TIMEOUT");
  expect(C.wireCodeName(18)).toBe("UNKNOWN(18)");
  expect(C.wireCodeName(2 ** 32 - 1)).toBe("UNKNOWN(4294967295)");
  expect(C.wireCodeName(-1)).toBe("UNKNOWN(-1)");
  expect(C.wireCodeName(1.5)).toBe("UNKNOWN(1.5)");
});
