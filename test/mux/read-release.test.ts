/**
 * Reads are released (their memory detached) once consumed, and never while a view of them is still needed:
 * the bytes that reach the local socket or the wire stay exact either way.
 */
import { describe, expect, test } from "bun:test";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { FrameType } from "../../src/protocol/constants.ts";
import { Session } from "../../src/mux/session.ts";
import type { Stream } from "../../src/mux/stream.ts";
import type { SessionOptions } from "../../src/mux/session-options.ts";
import { PatternSource } from "../support/pattern.ts";
import { FakeLocal } from "../support/mux-fakes.ts";

/** `n` seeded bytes in a fresh buffer of their own (as a socket read delivers them). */
const pattern = (seed: number, n: number): Uint8Array => new PatternSource(seed).next(n, true);

const KiB = 1024;
const detached = (b: Uint8Array): boolean => (b.buffer as ArrayBuffer).detached;
const OPEN = { service: "svc", visitorAddress: "127.0.0.1", visitorPort: 1, routeAddress: "127.0.0.1", routePort: 2 };

function options(role: "server" | "agent", peerWindow = 2048 * KiB): SessionOptions {
  return { role, localWindow: 2048 * KiB, peerWindow, localMaxFrame: 256 * KiB, peerMaxFrame: 256 * KiB, maxStreams: 8, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0 };
}


/** A connection socket that keeps every byte written. */
class FakeConn {
  bytes: number[] = [];
  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    for (let i = 0; i < byteLength; i++) this.bytes.push(data[byteOffset + i] as number);
    return byteLength;
  }
  shutdown(): void {}
  terminate(): void {}
}

/** One chunk holding OPEN(1) and a DATA frame for stream 1 carrying `payload`, as a fresh buffer. */
function openAndData(payload: Uint8Array): Uint8Array {
  const enc = new FrameEncoder();
  enc.open(1, OPEN);
  enc.data(1, payload);
  return enc.pending().slice();
}

async function agentWith(local: FakeLocal): Promise<{ session: Session; streams: Stream[] }> {
  const streams: Stream[] = [];
  const session = new Session(new FakeConn(), options("agent"), {
    onOpen(stream) {
      streams.push(stream);
      stream.attach(local);
    },
    onClose() {},
  });
  return { session, streams };
}

describe("received chunks", () => {
  test("a chunk whose DATA the local socket took at once is released; the bytes arrived exact", async () => {
    const payload = pattern(1, 200 * KiB);
    const local = new FakeLocal();
    const { session } = await agentWith(local);
    const chunk = openAndData(payload);
    session.onData(chunk);
    expect(detached(chunk)).toBe(true);
    expect(Buffer.from(local.got).equals(Buffer.from(payload))).toBe(true);
    session.close();
  });

  test("a chunk a stream still holds a view of is kept until written, and the bytes stay exact", async () => {
    const payload = pattern(2, 200 * KiB);
    const local = new FakeLocal();
    local.room = 10 * KiB; // takes 10 KiB, the rest (190 KiB, most of the chunk) is queued as a view
    const { session, streams } = await agentWith(local);
    const chunk = openAndData(payload);
    session.onData(chunk);
    expect(detached(chunk)).toBe(false);
    local.room = Infinity;
    streams[0]?.onDrain();
    expect(Buffer.from(local.got).equals(Buffer.from(payload))).toBe(true);
    session.close();
  });
});

describe("local reads", () => {
  /** The DATA payload bytes in what the session wrote (SPEC §2: type, flags, stream id u32, length u32). */
  function dataBytes(wire: number[]): number[] {
    const out: number[] = [];
    let p = 0;
    while (p + 10 <= wire.length) {
      const len = (((wire[p + 6] as number) << 24) | ((wire[p + 7] as number) << 16) | ((wire[p + 8] as number) << 8) | (wire[p + 9] as number)) >>> 0;
      if (wire[p] === FrameType.DATA) out.push(...wire.slice(p + 10, p + 10 + len));
      p += 10 + len;
    }
    return out;
  }

  test("a local read is released once staged whole; one waiting for credit is kept until sent", async () => {
    const conn = new FakeConn();
    const session = new Session(conn, options("server", 64 * KiB), { onClose() {} });
    const stream = session.openStream(new FakeLocal(), OPEN) as Stream;
    const first = pattern(3, 64 * KiB);
    stream.onData(first); // fits the peer's window: staged whole
    expect(detached(first)).toBe(true);
    const second = pattern(4, 100 * KiB);
    stream.onData(second); // no credit left: must stay intact
    expect(detached(second)).toBe(false);
    session.handleWindow(stream.id, 256 * KiB);
    expect(detached(second)).toBe(true);
    await new Promise((r) => setImmediate(r)); // the writer flushes once per loop turn
    const expected = [...pattern(3, 64 * KiB), ...pattern(4, 100 * KiB)];
    expect(Buffer.from(dataBytes(conn.bytes)).equals(Buffer.from(expected))).toBe(true);
    session.close();
  });
});
