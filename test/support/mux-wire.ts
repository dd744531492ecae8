/**
 * A Session driven in memory (test/mux): a Wire that decodes what the session writes and may take only part of a
 * write, local sockets that count what they take, and a server session with an injected clock and a 50 ms round trip.
 */
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { FrameEncoder } from "../../src/protocol/frame-encoder.ts";
import { Session } from "../../src/mux/session.ts";
import type { SessionOptions } from "../../src/mux/session-options.ts";
import type { LocalSocket } from "../../src/mux/stream-host.ts";
import { Recorder } from "./protocol-frames.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The OPEN payload of a TCP stream to service "svc". */
export const OPEN = { service: "svc", visitorAddress: "", visitorPort: 0, routeAddress: "", routePort: 0 };

/** A connection end that decodes what the session writes; takes at most `room` bytes per write (then `drain`). */
export class Wire {
  readonly rec = new Recorder();
  private readonly decoder = new FrameDecoder(this.rec, { maxFrameBytes: 16 * MiB });
  room = Infinity;
  write(data: Uint8Array, off = 0, len = data.byteLength - off): number {
    const n = Math.min(len, this.room);
    this.decoder.push(data.slice(off, off + n));
    return n;
  }
  shutdown(): void {}
  terminate(): void {}
}

/** A local socket that takes (and counts) `room` bytes per write. */
export class CountingLocal implements LocalSocket {
  room = Infinity;
  took = 0;
  write(data: Uint8Array, off = 0, len = data.byteLength - off): number {
    const n = Math.min(len, this.room);
    this.took += n;
    return n;
  }
  pause(): void {}
  resume(): void {}
  shutdown(): void {}
  end(): void {}
  terminate(): void {}
}

export const turn = () => new Promise((r) => setImmediate(r));

/** A server session over a Wire with an injected clock, and a peer that sends frames into it. */
export function serverSession(over: Partial<SessionOptions>) {
  const wire = new Wire();
  const clock = { t: 0 };
  const opts: SessionOptions = {
    role: "server", localWindow: 64 * KiB, peerWindow: 64 * KiB, localMaxFrame: 256 * KiB, peerMaxFrame: 256 * KiB,
    maxStreams: 1000, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0, windowMaxBytes: 4 * MiB, clock: () => clock.t, ...over,
  };
  const session = new Session(wire, opts, { onClose() {} });
  const send = (build: (e: FrameEncoder) => void) => {
    const enc = new FrameEncoder();
    build(enc);
    session.onData(enc.pending().slice());
  };
  // The round trip is 50 ms: a PONG whose stamp is 50 ms old.
  const stamp = new Uint8Array(8);
  new DataView(stamp.buffer).setFloat64(0, performance.now() - 50);
  send((e) => e.pong(stamp));
  return { session, wire, clock, send };
}
