/**
 * Byte-level compatibility with MOSN's tunnel handshake (mosn pkg/filter/network/tunnel/protocol.go, described in
 * shared/reference/mosn-tunnel.md §1): frames built by hand exactly as MOSN's Go encoder writes them.
 */
import { describe, expect, test } from "bun:test";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import { HandshakeDecoder, encodeHandshake, readBackchannelHello } from "../../src/protocol/handshake.ts";
import { fromHex, toHex } from "../support/protocol-prng.ts";

/** What MOSN's agent sends: Go encoding/json of ConnectionInitInfo, no omitempty, weight always 10, extra nil. */
const MOSN_INIT_INFO = fromHex(`
  20 88 01 01 01 00 00 63   # magic, version 1, flag 1, type 01 00, length 99
  7B 22 63 6C 75 73 74 65 72 5F 6E 61 6D 65 22 3A 22 63 22 2C   # {"cluster_name":"c",
  22 77 65 69 67 68 74 22 3A 31 30 2C                            # "weight":10,
  22 68 6F 73 74 5F 6E 61 6D 65 22 3A 22 22 2C                   # "host_name":"",
  22 63 72 65 64 65 6E 74 69 61 6C 5F 70 6F 6C 69 63 79 22 3A 22 22 2C   # "credential_policy":"",
  22 63 72 65 64 65 6E 74 69 61 6C 22 3A 22 22 2C                # "credential":"",
  22 65 78 74 72 61 22 3A 6E 75 6C 6C 7D                         # "extra":null}
`);

const enc = new TextEncoder();

describe("MOSN handshake bytes", () => {
  test("a MOSN agent's InitInfo decodes to the expected fields, with no Backchannel hello", () => {
    expect(MOSN_INIT_INFO.length).toBe(8 + 0x63);
    const r = new HandshakeDecoder({ accept: [1, 3] }).push(MOSN_INIT_INFO);
    expect(r.kind).toBe("frame");
    if (r.kind !== "frame" || r.message.flag !== 1) throw new Error("not an InitInfo");
    expect(r.message.body).toEqual({ cluster_name: "c", weight: 10, host_name: "", credential_policy: "", credential: "", extra: null });
    expect(r.rest.length).toBe(0);
    expect(readBackchannelHello(r.message.body)).toBeNull(); // the server answers UNSUPPORTED_VERSION (16)
  });

  test("our InitInfo encoding of the same fields is byte-identical to MOSN's", () => {
    const ours = encodeHandshake({ flag: 1, body: { cluster_name: "c", weight: 10, host_name: "", credential_policy: "", credential: "", extra: null } });
    expect(toHex(ours)).toBe(toHex(MOSN_INIT_INFO));
  });

  test("a failure response is byte-identical to MOSN's (length 0x0C = 12)", () => {
    const ours = encodeHandshake({ flag: 2, body: { status: HandshakeStatus.AUTH_FAILED } });
    expect(toHex(ours)).toBe("20 88 01 02 02 00 00 0C 7B 22 73 74 61 74 75 73 22 3A 32 7D");
    expect(toHex(encodeHandshake({ flag: 2, body: { status: 1 } }))).toBe("20 88 01 02 02 00 00 0C 7B 22 73 74 61 74 75 73 22 3A 31 7D");
  });

  test("our success response keeps MOSN's header layout and puts status first, so MOSN's decoder reads it", () => {
    const ours = encodeHandshake({
      flag: 2,
      body: { status: 1, connection_id: "c-1", backchannel: { version: 1, window: 2097152, max_frame: 262144 } },
    });
    const body = ours.subarray(8);
    expect(toHex(ours.subarray(0, 6))).toBe("20 88 01 02 02 00");
    expect((ours[6]! << 8) | ours[7]!).toBe(body.length);
    expect(toHex(body.subarray(0, 12))).toBe(toHex(enc.encode('{"status":1,')));
  });

  test("MOSN's GracefulClose (aside connection) decodes, and ours is byte-identical", () => {
    const json = enc.encode('{"addresses":["10.0.0.1:34567"],"cluster_name":"c"}');
    const mosn = new Uint8Array(8 + json.length);
    mosn.set([0x20, 0x88, 0x01, 0x03, 0x01, 0x00, 0x00, json.length]);
    mosn.set(json, 8);
    const r = new HandshakeDecoder().push(mosn);
    expect(r.kind === "frame" && r.message).toEqual({ flag: 3, body: { addresses: ["10.0.0.1:34567"], cluster_name: "c" } });
    expect(toHex(encodeHandshake({ flag: 3, body: { addresses: ["10.0.0.1:34567"], cluster_name: "c" } }))).toBe(toHex(mosn));
  });

  test("MOSN's reader waits for the whole frame before checking the magic; ours fails after 2 bytes", () => {
    // A peer that sends a wrong magic and a huge length makes MOSN wait for 64 KiB; we do not wait at all.
    const r = new HandshakeDecoder().push(Uint8Array.of(0xda, 0xbb));
    expect(r.kind === "error" && r.error.code).toBe("ERR_HANDSHAKE_MAGIC");
  });
});
