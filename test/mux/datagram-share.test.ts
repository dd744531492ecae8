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
import { DatagramFlow, FlowTable } from "../../src/mux/datagram-flow.ts";

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

test("datagrams that find the connection over UDP's share are dropped, not held: a flood cannot pause TCP reads", async () => {
  // Found by a hostile-visitor review (issue 20): each flow used to hold the datagram that found no room as a
  // waiting record, so 200 flows of 60 KB datagrams held 12 MB, past the session's budget of unsent local bytes
  // (8 MiB): every stream then stopped reading its local socket, the TCP ones too.
  const { session, wire } = serverSession({});
  const tcpLocal = new PausingLocal();
  const tcp = session.openStream(tcpLocal, OPEN) as Stream;
  const table = new FlowTable(60_000, Infinity);
  const drops: string[] = [];
  const counters = { received() {}, delivered() {}, dropped: (r: string) => void drops.push(r) };
  const flows = Array.from({ length: 200 }, (_, i) => {
    const flow = new DatagramFlow(String(i), table, (ds) => ds.length, counters, () => {});
    flow.bind(session.openStream(flow, { ...OPEN, datagram: true }) as Stream);
    table.add(flow);
    return flow;
  });
  await turn();
  wire.room = 0; // the connection takes nothing (the agent's link is saturated): the session waits for drain
  tcp.onData(new Uint8Array(1000).fill(1));
  await turn();
  const d = new Uint8Array(60_000).fill(9);
  for (const f of flows) f.receive(d, false);
  expect(drops.length).toBe(200);
  expect(drops.every((r) => r === "queue_full")).toBe(true);
  expect(session.readsPaused).toBe(false);
  expect(tcpLocal.paused).toBe(false);
  // Once the connection drains, datagrams go through again.
  wire.room = Infinity;
  session.onDrain();
  flows[0]?.receive(d, false);
  expect(drops.length).toBe(200);
  await turn();
  expect(wire.rec.log.filter((e) => e.t === "data" && e.id === flows[0]?.stream?.id).length).toBeGreaterThan(0);
  table.close();
  session.close();
});

/** A local socket that records whether the stream paused it. */
class PausingLocal extends FakeLocal {
  paused = false;
  override pause(): void {
    this.paused = true;
  }
  override resume(): void {
    this.paused = false;
  }
}
