/**
 * Datagram streams and UDP's share of the staging buffer (SPEC.md §2.5), driven in memory. A datagram stream
 * past UDP's share waits for the next write even while TCP streams may still stage: the session must not spin
 * pumping it (found by the bench's UDP stage: a server under a flood from 10,000 addresses stopped answering).
 */
import { expect, test } from "bun:test";
import { datagramRecord } from "../../src/protocol/datagram.ts";
import type { Stream } from "../../src/mux/stream.ts";
import { FakeLocal } from "../support/mux-fakes.ts";
import { OPEN, serverSession, turn } from "../support/mux-wire.ts";

const KiB = 1024;

test("a datagram stream over UDP's share while TCP room remains waits for the next write instead of spinning", async () => {
  // Staging high-water 256 KiB, so UDP's share (a quarter) is 64 KiB; a TCP stream's credit is 100 KiB.
  const { session, wire } = serverSession({ highWaterBytes: 256 * KiB, peerWindow: 100 * KiB, peerMaxFrame: 64 * KiB });
  const filler = session.openStream(new FakeLocal(), OPEN) as Stream;
  const bulk = session.openStream(new FakeLocal(), OPEN) as Stream;
  const flow = session.openStream(new FakeLocal(), { ...OPEN, datagram: true }) as Stream;
  await turn();
  // Every pump of a datagram stream asks canSendDatagrams: a bounded number per drain, or the loop never ends.
  let asked = 0;
  const canSendDatagrams = session.canSendDatagrams.bind(session);
  session.canSendDatagrams = () => {
    if (++asked > 1_000) throw new Error("a blocked datagram stream was pumped 1,000 times in a row");
    return canSendDatagrams();
  };
  wire.room = 0; // the connection takes nothing: the session waits for drain
  filler.onData(new Uint8Array(10 * KiB).fill(1));
  await turn();
  bulk.onData(new Uint8Array(100 * KiB).fill(2)); // blocked: the socket is not writable
  flow.onData(datagramRecord(new Uint8Array(100).fill(3))); // blocked too
  wire.room = Infinity;
  // The drain writes the filler; the bulk stream stages its 100 KiB of credit (over UDP's share, under the
  // high-water mark) and stops for credit; the datagram stream must then wait for the next write.
  expect(() => session.onDrain()).not.toThrow();
  expect(asked).toBeLessThan(10);
  await turn();
  await turn();
  const flowData = wire.rec.log.filter((e) => e.t === "data" && e.id === flow.id);
  expect(flowData.length).toBe(1); // the record went out with the next write
  expect(flow.end).toBeNull();
  session.close();
});
