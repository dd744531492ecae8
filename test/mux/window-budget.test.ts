/**
 * Adaptive windows inside a Session (SPEC.md §2.2): the inbound budgets hold against a hostile peer that fills
 * every window it is given on many streams, all trying to grow, while the local sockets stop reading; and the
 * sending side serves streams round-robin, so an interactive stream's frame is not staged behind more than the
 * high-water mark and one quantum of another stream's bytes. Driven in memory with an injected clock: nothing timed.
 */
import { describe, expect, test } from "bun:test";
import type { Stream } from "../../src/mux/stream.ts";
import { processInboundOf } from "../../src/mux/inbound-queue.ts";
import { SEND_QUANTUM_BYTES } from "../../src/mux/stream-host.ts";
import { CountingLocal as FakeLocal, OPEN, serverSession, turn } from "../support/mux-wire.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("inbound budgets under a hostile peer", () => {
  test("many streams all trying to grow never take the window growth past the connection or process budget", async () => {
    const perConnection = 1 * MiB;
    const perProcess = 1.5 * MiB;
    const base = processInboundOf.server.bytes;
    const sides = [0, 1].map(() => serverSession({ inboundMaxBytesPerConnection: perConnection, inboundMaxBytes: perProcess }));
    const all: { side: (typeof sides)[number]; stream: Stream; local: FakeLocal; credit: number }[] = [];
    for (const side of sides) {
      for (let i = 0; i < 16; i++) {
        const local = new FakeLocal();
        const stream = side.session.openStream(local, OPEN) as Stream;
        side.send((e) => e.ack(stream.id));
        all.push({ side, stream, local, credit: 64 * KiB });
      }
    }
    let grew = 0;
    const check = () => {
      for (const side of sides) {
        const streams = all.filter((s) => s.side === side);
        const growth = streams.reduce((sum, s) => sum + s.stream.receiveWindow - 64 * KiB, 0);
        grew = Math.max(grew, growth);
        expect(growth).toBeLessThanOrEqual(perConnection);
        // What the connection holds for its local sockets: the base windows, beyond them only within the budget.
        const queued = streams.reduce((sum, s) => sum + s.stream.queuedBytes, 0);
        expect(queued).toBeLessThanOrEqual(perConnection + streams.length * 64 * KiB);
      }
      const growth = all.reduce((sum, s) => sum + s.stream.receiveWindow - 64 * KiB, 0);
      expect(growth).toBeLessThanOrEqual(perProcess);
    };
    for (let round = 0; round < 40; round++) {
      if (round === 20) for (const s of all) s.local.room = 0; // the local sockets stop reading
      for (const s of all) {
        const n = s.credit; // the peer sends every byte of credit it holds, at once
        s.credit = 0;
        if (n > 0) s.side.send((e) => e.data(s.stream.id, new Uint8Array(n)));
      }
      for (const side of sides) side.clock.t += 10; // a whole window per 10 ms at a 50 ms round trip: "grow"
      await turn();
      for (const s of all) {
        const inc = s.side.wire.rec.log.filter((e) => e.t === "window" && e.id === s.stream.id).reduce((sum, e) => sum + (e.t === "window" ? e.inc : 0), 0);
        s.credit = Math.max(0, 64 * KiB + inc - s.stream.bytesIn - s.stream.queuedBytes);
      }
      check();
      expect(all.every((s) => s.stream.end === null)).toBe(true); // no stream was reset: the peer kept to its credit
    }
    expect(grew).toBeGreaterThan(perConnection / 2); // the windows did try to grow, up to the budget
    const held = all.reduce((sum, s) => sum + s.stream.queuedBytes, 0);
    expect(held).toBeLessThanOrEqual(perProcess + all.length * 64 * KiB);
    for (const side of sides) side.session.close();
    expect(processInboundOf.server.bytes).toBe(base);
  });
});

describe("round-robin sending", () => {
  test("an interactive frame is staged behind at most the high-water mark and one quantum of each bulk stream", async () => {
    const highWater = 256 * KiB;
    const { session, wire } = serverSession({ highWaterBytes: highWater, peerWindow: 64 * MiB, peerMaxFrame: 64 * KiB });
    const bulks = [0, 1].map(() => session.openStream(new FakeLocal(), OPEN) as Stream);
    await turn();
    wire.room = 100 * KiB; // the connection takes 100 KiB per write, then waits for drain
    for (const b of bulks) b.onData(new Uint8Array(4 * MiB).fill(7));
    const interactive = session.openStream(new FakeLocal(), OPEN) as Stream;
    const before = wire.rec.log.filter((e) => e.t === "data").reduce((n, e) => n + (e.t === "data" ? e.bytes.length : 0), 0);
    interactive.onData(new Uint8Array(KiB).fill(1));
    let ahead = -1;
    for (let i = 0; i < 200 && ahead < 0; i++) {
      session.onDrain();
      await turn();
      let bulk = 0;
      for (const e of wire.rec.log) {
        if (e.t !== "data") continue;
        if (e.id === interactive.id) {
          ahead = bulk - before;
          break;
        }
        bulk += e.bytes.length;
      }
    }
    console.log(`bulk bytes written between the interactive read and its frame: ${ahead}`);
    expect(ahead).toBeGreaterThanOrEqual(0);
    expect(ahead).toBeLessThanOrEqual(highWater + 64 * KiB + bulks.length * SEND_QUANTUM_BYTES);
    session.close();
  });
});
