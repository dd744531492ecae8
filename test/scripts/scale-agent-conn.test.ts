/**
 * The scale kit's synthetic agent (scripts/scale/frames.ts, agent-conn.ts), without sockets: its frames against
 * SPEC.md's own examples, the echo with window credit (byte-exact, whatever the chunking), and hostile servers
 * (each a clear code, the connection failed, nothing written after).
 */
import { describe, expect, test } from "bun:test";
import { AgentConn } from "../../scripts/scale/agent-conn.ts";
import { encodeFrame, encodeHello, encodeU32Frame, FrameReader, FrameType, ResponseReader, WireError, type Frame, type Hello, type Response } from "../../scripts/scale/frames.ts";
import { Prng } from "../support/protocol-prng.ts";
import { specVectors } from "../support/protocol-spec.ts";

const vectors = new Map(specVectors().map((v) => [v.name, v]));
const vec = (name: string) => (vectors.get(name) as { bytes: Uint8Array }).bytes;

const HELLO: Hello = { cluster: "edge", weight: 10, hostName: "gw-01", credential: "s3cr3t", slot: 0, instance: "5f1c", window: 65_536, maxFrame: 262_144 };

/** A handshake response frame with this JSON body. */
function response(body: object): Uint8Array {
  const b = new TextEncoder().encode(JSON.stringify(body));
  return new Uint8Array([0x20, 0x88, 0x01, 0x02, 0x02, 0x00, b.length >> 8, b.length & 0xff, ...b]);
}

const OK = (window = 2_097_152) => response({ status: 1, connection_id: "k7", backchannel: { version: 1, window, max_frame: 262_144 } });

/** An OPEN frame for `service` on stream `id`. */
function open(id: number, service = "echo", flags = 0): Uint8Array {
  const s = new TextEncoder().encode(service);
  const ip = new TextEncoder().encode("203.0.113.7");
  const f = encodeFrame(FrameType.OPEN, id, new Uint8Array([s.length, ...s, ip.length, ...ip, 0xc7, 0x38, 0, 0, 0]));
  f[1] = flags;
  return f;
}

const data = (id: number, bytes: Uint8Array) => encodeFrame(FrameType.DATA, id, bytes);

/** A connection with everything it wrote decoded as server-side frames, and its events. */
function harness(hello = HELLO) {
  const written: Uint8Array[] = [];
  const ev = { registered: [] as Response[], refused: [] as Response[], goaway: 0, failed: [] as WireError[] };
  const conn = new AgentConn(hello, new Set(["echo"]), {
    write: (b) => void written.push(b),
    registered: (r) => void ev.registered.push(r),
    refused: (r) => void ev.refused.push(r),
    goaway: () => void ev.goaway++,
    failed: (e) => void ev.failed.push(e),
  });
  conn.start();
  const reader = new FrameReader(16_777_216);
  let taken = 1; // the hello
  /** Frames written since the last call. */
  const frames = (): Frame[] => {
    const out = written.slice(taken).flatMap((b) => reader.push(b));
    taken = written.length;
    return out;
  };
  return { conn, ev, written, frames };
}

/** The bytes of every DATA frame of `stream` among `frames`. */
const echoed = (frames: Frame[], stream: number) => Buffer.concat(frames.filter((f) => f.type === FrameType.DATA && f.streamId === stream).map((f) => f.payload));

describe("frames from SPEC.md's examples", () => {
  test("the hello is byte for byte SPEC's Backchannel ConnectionInitInfo", () => {
    expect(encodeHello(HELLO)).toEqual(vec("handshake-init-info-backchannel"));
  });

  test("SPEC's success and busy responses read field by field, even one byte at a time", () => {
    for (const [name, status, retry] of [["handshake-response-success", 1, null], ["handshake-response-busy", 17, 1000]] as const) {
      const r = new ResponseReader();
      const bytes = vec(name);
      let got = null;
      for (let i = 0; i < bytes.length; i++) got = r.push(bytes.subarray(i, i + 1));
      expect(got?.response).toMatchObject({ status, retryAfterMs: retry });
    }
    expect(new ResponseReader().push(vec("handshake-response-success"))?.response).toEqual({ status: 1, connectionId: "k7", window: 2_097_152, maxFrame: 262_144, retryAfterMs: null });
  });

  test("every stream frame example decodes, and every rejected one fails with SPEC's code", () => {
    for (const v of specVectors().filter((x) => x.name.startsWith("frame-"))) {
      const reader = new FrameReader(262_144);
      if (v.rejectCode === null) {
        const reencoded = reader.push(v.bytes).map((f) => {
          const b = encodeFrame(f.type, f.streamId, f.payload);
          b[1] = f.flags;
          return b;
        });
        expect(Buffer.concat(reencoded)).toEqual(Buffer.from(v.bytes));
      } else {
        expect(() => reader.push(v.bytes)).toThrow(expect.objectContaining({ code: v.rejectCode }));
      }
    }
  });
});

describe("the synthetic agent", () => {
  test("registers on a success response; a SERVER_BUSY answer is a refusal with its hint", () => {
    const a = harness();
    a.conn.feed(OK());
    expect(a.conn.state).toBe("open");
    expect(a.ev.registered[0]).toMatchObject({ connectionId: "k7", window: 2_097_152 });
    const b = harness();
    b.conn.feed(vec("handshake-response-busy"));
    expect(b.conn.state).toBe("refused");
    expect(b.ev.refused[0]?.retryAfterMs).toBe(1000);
  });

  test("answers a PING with a PONG of the same 8 bytes, sent in the same write as the frames behind the response", () => {
    const a = harness();
    a.conn.feed(Buffer.concat([OK(), vec("frame-ping")]));
    const f = a.frames();
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ type: FrameType.PONG, streamId: 0, payload: vec("frame-ping").subarray(10) });
  });

  test("an OPEN is ACKed; DATA is echoed within the server's credit and the swarm's window is returned once sent", () => {
    const a = harness();
    a.conn.feed(OK(100)); // the server grants 100 bytes per stream
    a.conn.feed(open(1));
    expect(a.frames().map((f) => f.type)).toEqual([FrameType.ACK]);
    const payload = new Prng(7).bytes(250);
    a.conn.feed(data(1, payload));
    let f = a.frames();
    expect(echoed(f, 1)).toEqual(Buffer.from(payload.subarray(0, 100)));
    expect(f.filter((x) => x.type === FrameType.WINDOW).map((x) => new DataView(x.payload.buffer).getUint32(0))).toEqual([100]);
    a.conn.feed(encodeU32Frame(FrameType.WINDOW, 1, 1000));
    f = a.frames();
    expect(echoed(f, 1)).toEqual(Buffer.from(payload.subarray(100)));
    a.conn.feed(encodeFrame(FrameType.FIN, 1));
    expect(a.frames().map((x) => x.type)).toEqual([FrameType.FIN]);
    expect(a.conn.activeStreams).toBe(0);
    a.conn.feed(encodeU32Frame(FrameType.WINDOW, 1, 5)); // late frame of an ended stream: ignored
    expect(a.frames()).toEqual([]);
    expect(a.conn.echoedBytes).toBe(250);
  });

  test("the echo is byte-exact whatever the chunking (seeded: 20 streams, random splits)", () => {
    const rng = new Prng(19);
    const a = harness();
    const sent = new Map<number, Uint8Array[]>();
    const parts: Uint8Array[] = [OK()];
    for (let id = 1; id <= 20; id++) parts.push(open(id));
    for (let i = 0; i < 200; i++) {
      const id = rng.range(1, 20);
      const p = rng.bytes(rng.range(0, 3000));
      sent.set(id, [...(sent.get(id) ?? []), p]);
      parts.push(data(id, p));
    }
    for (let id = 1; id <= 20; id++) parts.push(encodeFrame(FrameType.FIN, id));
    const all = Buffer.concat(parts);
    for (let at = 0; at < all.length; ) {
      const n = rng.range(1, 700);
      a.conn.feed(all.subarray(at, at + n));
      at += n;
    }
    const f = a.frames();
    for (let id = 1; id <= 20; id++) expect(echoed(f, id)).toEqual(Buffer.concat(sent.get(id) ?? []));
    expect(f.filter((x) => x.type === FrameType.FIN)).toHaveLength(20);
    expect(a.conn.activeStreams).toBe(0);
    expect(a.ev.failed).toEqual([]);
  });

  test("an unknown service or a datagram OPEN is answered RST UNKNOWN_SERVICE; DATA past the window RST FLOW_CONTROL_ERROR", () => {
    const a = harness({ ...HELLO, window: 10 });
    a.conn.feed(OK());
    a.conn.feed(open(1, "ssh"));
    a.conn.feed(open(2, "echo", 1));
    a.conn.feed(open(3));
    a.conn.feed(data(3, new Uint8Array(11)));
    const rst = a.frames().filter((f) => f.type === FrameType.RST).map((f) => [f.streamId, new DataView(f.payload.buffer).getUint32(0)]);
    expect(rst).toEqual([[1, 8], [2, 8], [3, 3]]);
    expect(a.conn.state).toBe("open");
  });

  test("GOAWAY is reported once; an OPEN after it breaks the protocol", () => {
    const a = harness();
    a.conn.feed(Buffer.concat([OK(), vec("frame-goaway"), vec("frame-goaway")]));
    expect(a.ev.goaway).toBe(1);
    a.conn.feed(open(6));
    expect(a.ev.failed[0]?.code).toBe("ERR_PROTOCOL");
  });
});

describe("a hostile server", () => {
  const cases: [string, () => Uint8Array, string][] = [
    ["a TLS record instead of a response", () => new Uint8Array([0x16, 0x03, 0x01]), "ERR_HANDSHAKE_MAGIC"],
    ["a request type with the response flag (SPEC's example)", () => vec("handshake-reject-type"), "ERR_HANDSHAKE_TYPE"],
    ["a request flag in the response", () => new Uint8Array([0x20, 0x88, 0x01, 0x01]), "ERR_HANDSHAKE_FLAG"],
    ["a response body over 16 KiB (rejected from its length)", () => new Uint8Array([0x20, 0x88, 0x01, 0x02, 0x02, 0x00, 0x40, 0x01]), "ERR_HANDSHAKE_TOO_LARGE"],
    ["a response that is not JSON", () => new Uint8Array([0x20, 0x88, 0x01, 0x02, 0x02, 0x00, 0x00, 0x02, 0x7b, 0xff]), "ERR_HANDSHAKE_JSON"],
    ["a success without backchannel", () => response({ status: 1 }), "ERR_HANDSHAKE_SHAPE"],
    ["an unknown frame type", () => Buffer.concat([OK(), new Uint8Array([0x0a])]), "ERR_FRAME_TYPE"],
    ["a DATA header over max_frame (no payload needed)", () => Buffer.concat([OK(), new Uint8Array([0, 0, 0, 0, 0, 1, 0x00, 0x04, 0x00, 0x01])]), "ERR_FRAME_SIZE"],
    ["DATA on a stream never opened", () => Buffer.concat([OK(), data(9, new Uint8Array(3))]), "ERR_PROTOCOL"],
    ["a WINDOW of 0", () => Buffer.concat([OK(), open(1), vec("frame-reject-window-zero")]), "ERR_FRAME_PAYLOAD"],
    ["a malformed OPEN", () => Buffer.concat([OK(), vec("frame-reject-open-service")]), "ERR_FRAME_PAYLOAD"],
    ["an ACK (only agents send ACK)", () => Buffer.concat([OK(), open(1), vec("frame-ack")]), "ERR_PROTOCOL"],
    ["CONTROL on a data connection", () => Buffer.concat([OK(), vec("frame-control")]), "ERR_FRAME_PAYLOAD"],
    ["stream ids going backwards", () => Buffer.concat([OK(), open(2), open(1)]), "ERR_PROTOCOL"],
  ];
  for (const [what, bytes, code] of cases) {
    test(`${what}: ${code}, the connection failed, nothing more written`, () => {
      const a = harness();
      a.conn.feed(bytes());
      expect(a.ev.failed.map((e) => e.code)).toEqual([code]);
      expect(a.conn.state).toBe("failed");
      const before = a.written.length;
      a.conn.feed(vec("frame-ping"));
      expect(a.written.length).toBe(before);
    });
  }

  test("garbage of every length never throws out of feed (seeded)", () => {
    const rng = new Prng(4);
    for (let i = 0; i < 300; i++) {
      const a = harness();
      expect(() => {
        a.conn.feed(OK());
        a.conn.feed(rng.bytes(rng.range(1, 64)));
      }).not.toThrow();
    }
  });
});
