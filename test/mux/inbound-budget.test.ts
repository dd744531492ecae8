/**
 * The agent's opening window and inbound tally (SPEC.md §2.2), driven through a Session in memory: a stream counts
 * its whole opening window until its local socket is attached, then its queued bytes; every way a stream ends gives
 * its count back (a leak would refuse streams forever); the ACK is followed by one WINDOW up to the full window.
 */
import { describe, expect, test } from "bun:test";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { WireCode } from "../../src/protocol/constants.ts";
import { Session } from "../../src/mux/session.ts";
import { processInbound } from "../../src/mux/inbound-queue.ts";
import type { Stream } from "../../src/mux/stream.ts";
import type { SessionOptions } from "../../src/mux/session-options.ts";
import { FakeLocal } from "../support/mux-fakes.ts";

const KiB = 1024;
const OPEN = { service: "svc", visitorAddress: "", visitorPort: 0, routeAddress: "", routePort: 0 };
const OPTIONS: SessionOptions = {
  role: "agent", localWindow: 64 * KiB, openWindow: 2048 * KiB, peerWindow: 1024 * KiB, localMaxFrame: 256 * KiB,
  peerMaxFrame: 256 * KiB, maxStreams: 100, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0,
  inboundMaxBytesPerConnection: 256 * KiB, inboundMaxBytes: 1024 * KiB,
};

/** Frames the session wrote, decoded: [type name, stream id, RST code or WINDOW increment]. */
class WireLog {
  readonly frames: [string, number, number?][] = [];
  private readonly decoder = new FrameDecoder({
    handleOpen: () => {},
    handleData: () => {},
    handleAck: (id) => void this.frames.push(["ACK", id]),
    handleFin: () => {},
    handleRst: (id, code) => void this.frames.push(["RST", id, code]),
    handleWindow: (id, inc) => void this.frames.push(["WINDOW", id, inc]),
    handlePing: () => {},
    handlePong: () => {},
    handleControl: () => {},
    handleGoAway: () => {},
  });
  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    this.decoder.push(data.slice(byteOffset, byteOffset + byteLength));
    return byteLength;
  }
  shutdown(): void {}
  terminate(): void {}
}

function agentSession(opts: SessionOptions = OPTIONS) {
  const wire = new WireLog();
  const streams: Stream[] = [];
  const refused: string[] = [];
  const session = new Session(wire, opts, { onOpen: (s) => void streams.push(s), onRefused: (r) => void refused.push(r), onClose() {} });
  const send = (build: (e: FrameEncoder) => void) => {
    const enc = new FrameEncoder();
    build(enc);
    session.onData(enc.pending().slice());
  };
  /** Lets the writer's end-of-turn flush run. */
  const flushed = () => new Promise((r) => setTimeout(r, 0));
  return { session, wire, streams, refused, send, flushed };
}

describe("inbound tally", () => {
  test("an unattached stream counts its opening window; attached, its queued bytes; ended, nothing", async () => {
    const before = processInbound.bytes;
    const { session, streams, send } = agentSession();
    send((e) => { e.open(1, OPEN); e.data(1, new Uint8Array(10 * KiB)); });
    expect(session.inbound.bytes).toBe(64 * KiB); // the reservation covers the 10 KiB queued
    const local = new FakeLocal();
    local.room = 4 * KiB;
    streams[0]!.attach(local);
    expect(session.inbound.bytes).toBe(6 * KiB); // now the bytes still queued
    expect(processInbound.bytes - before).toBe(6 * KiB);
    local.room = Infinity;
    streams[0]!.onDrain();
    expect(session.inbound.bytes).toBe(0);
    send((e) => { e.open(2, OPEN); e.data(2, new Uint8Array(KiB)); e.rst(2, WireCode.CANCEL); }); // reset before attach
    send((e) => { e.open(3, OPEN); e.data(3, new Uint8Array(KiB)); });
    const queued = new FakeLocal();
    queued.room = 0;
    streams[2]!.attach(queued);
    send((e) => { e.data(3, new Uint8Array(KiB)); e.rst(3, WireCode.CANCEL); }); // reset with bytes queued
    send((e) => { e.open(4, OPEN); e.data(4, new Uint8Array(KiB)); });
    session.close(); // aborted, unattached
    expect(session.inbound.bytes).toBe(0);
    expect(processInbound.bytes).toBe(before);
  });

  test("an OPEN past the connection budget is refused with REFUSED_STREAM and creates no stream", async () => {
    const { session, wire, streams, refused, send, flushed } = agentSession();
    send((e) => {
      for (let id = 1; id <= 5; id++) e.open(id, OPEN);
    });
    await flushed();
    expect(streams.map((s) => s.id)).toEqual([1, 2, 3, 4]); // 4 × 64 KiB = the 256 KiB budget
    expect(wire.frames).toEqual([["RST", 5, WireCode.REFUSED_STREAM]]);
    expect(refused).toEqual(["inbound_budget"]);
    streams[0]!.attach(new FakeLocal()); // its reservation ends: room for one more
    send((e) => { e.open(6, OPEN); });
    expect(streams.map((s) => s.id)).toEqual([1, 2, 3, 4, 6]);
    session.close();
  });

  test("a hostile peer sending past the opening window is reset with FLOW_CONTROL_ERROR, its bytes dropped", async () => {
    const { session, wire, send, flushed } = agentSession();
    send((e) => { e.open(1, OPEN); e.data(1, new Uint8Array(64 * KiB)); e.data(1, new Uint8Array(1)); });
    await flushed();
    expect(wire.frames).toEqual([["RST", 1, WireCode.FLOW_CONTROL_ERROR]]);
    expect(session.inbound.bytes).toBe(0);
    session.close();
  });
});

describe("opening window", () => {
  test("after the ACK one WINDOW grows the stream to its full window; credit then returns once 128 KiB are owed", async () => {
    const { session, wire, streams, send, flushed } = agentSession();
    send((e) => { e.open(1, OPEN); e.data(1, new Uint8Array(40 * KiB)); });
    streams[0]!.attach(new FakeLocal());
    streams[0]!.acknowledge();
    await flushed();
    // 40 KiB written at attach: credit returned (past a quarter of the opening window), then ACK, then the rest.
    expect(wire.frames).toEqual([["WINDOW", 1, 40 * KiB], ["ACK", 1], ["WINDOW", 1, 2048 * KiB - 64 * KiB]]);
    wire.frames.length = 0;
    send((e) => {
      for (let i = 0; i < 4; i++) e.data(1, new Uint8Array(256 * KiB)); // more than the opening window allowed
    });
    await flushed();
    // Owed credit goes back once it reaches a quarter of the window, at most 128 KiB (CREDIT_BATCH_MAX_BYTES: a
    // large batch lets the peer burst into a bottleneck queue): here after every 256 KiB frame.
    expect(wire.frames).toEqual(Array(4).fill(["WINDOW", 1, 256 * KiB]));
    session.close();
  });
});
