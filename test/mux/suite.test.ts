/**
 * The mux suite: the same cases over an in-memory connection (short writes, seeded random read sizes), TCP loopback
 * and TLS loopback, as yamux runs its session tests over several connection types. Each case asserts what can be
 * observed: frames on the wire and their codes (SPEC.md §2.2, §5.2), onStreamEnd codes, and every transferred byte
 * (seeded patterns, byte-exact). Hostile peers are driven with raw wire bytes (test/support/protocol-frames.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { TunnelError } from "../../src/errors.ts";
import { FrameType, WireCode } from "../../src/protocol/constants.ts";
import type { Stream } from "../../src/mux/stream.ts";
import { MuxHarness, seeds, type Role } from "../support/mux-harness.ts";
import { bindLocal, dataEv, localPair, OPEN, type LocalPeer, type RawPeer, type SessionSide } from "../support/mux-peers.ts";
import { memoryTransport, tcpTransport, tlsTransport, type Transport } from "../support/mux-transports.ts";
import { FakeLocal } from "../support/mux-fakes.ts";
import { waitFor } from "../support/net.ts";
import { PatternSource, type PatternVerifier } from "../support/pattern.ts";
import type { MemorySocket } from "../support/memory-socket.ts";
import { Prng } from "../support/protocol-prng.ts";
import type { Ev } from "../support/protocol-frames.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Frame types by name, for messages. */
const { DATA, OPEN: OPEN_T, ACK, FIN, RST, PONG, GOAWAY } = FrameType;
const ROLES: Role[] = ["server", "agent"];

const TRANSPORTS: Transport[] = [
  memoryTransport({ bufferBytes: 64 * KiB, maxWriteBytes: 24 * KiB, maxChunkBytes: 20 * KiB, seed: 13 }),
  tcpTransport(),
  tlsTransport(),
];

/** The error a session closed with (fails if it is open or closed cleanly). */
function closeCode(side: SessionSide): string {
  return (side.closedWith as TunnelError | null | undefined)?.code ?? String(side.closedWith);
}

/** Waits until the raw peer saw a GOAWAY and the connection's FIN; returns the GOAWAY. */
async function goAwayAndFin(raw: RawPeer) {
  const g = await raw.next(GOAWAY, undefined, "GOAWAY");
  await waitFor(() => raw.ended || raw.closed, "FIN after the GOAWAY");
  return g;
}

/** After a PING round trip: the session sent `rsts` RSTs for stream `id` in all, no GOAWAY, and is open. */
async function quietAbout(raw: RawPeer, side: SessionSide, id: number, rsts = 0): Promise<void> {
  await raw.sync();
  expect(raw.all(RST, id).length).toBe(rsts);
  expect(raw.all(GOAWAY)).toEqual([]);
  expect(side.closedWith).toBeUndefined();
}

describe.each(TRANSPORTS)("mux over $name", (transport) => {
  const h = new MuxHarness(transport);
  let started = 0;
  beforeAll(() => void (started = performance.now()));
  afterEach(() => h.cleanup());
  afterAll(() => {
    transport.stop();
    console.log(`mux suite over ${transport.name}: ${(performance.now() - started).toFixed(0)} ms`);
  });

  describe("transfer", () => {
    test("4 streams carry 1 MiB each way (16× the window) byte-exact; both ends finish every stream cleanly", async () => {
      const BYTES = MiB;
      const { server, agent, targets, visit } = await h.realPair(BYTES);
      const visitors = Array.from({ length: 4 }, () => visit(BYTES));
      await waitFor(() => server.ends.length === 4 && agent.ends.length === 4, "every stream ended on both sides", 15_000);
      for (const { stream, visitor } of visitors) {
        expect(visitor.got(BYTES)).toBe(true);
        expect(targets.get(stream.id)?.got(BYTES)).toBe(true);
      }
      expect(server.ends.map((e) => e.code)).toEqual([null, null, null, null]);
      expect(agent.ends.map((e) => e.code)).toEqual([null, null, null, null]);
      expect(server.acked.length).toBe(4);
      expect(server.session.activeStreams + agent.session.activeStreams).toBe(0);
      // The local sockets were shut down after the last byte, never reset.
      await waitFor(() => visitors.every((v) => v.visitor.closed) && [...targets.values()].every((t) => t.closed), "locals closed");
      expect([...visitors.map((v) => v.visitor), ...targets.values()].map((l) => l.closeError)).toEqual(Array(8).fill(undefined));
      expect(server.closedWith).toBeUndefined();
      expect(agent.closedWith).toBeUndefined();
    }, 20_000);

    test("a sender never exceeds the credit granted: DATA stops at the window until each WINDOW", async () => {
      const BYTES = 600 * KiB;
      const { side, raw } = await h.facingRaw("server");
      const verifier = raw.expectData(1, seeds.visitor(1));
      let credit = 64 * KiB;
      let overruns = 0;
      raw.onFrame = (f) => {
        const got = raw.dataBytes.get(1) ?? 0;
        if (f.type === DATA && got > credit) overruns++;
        // Credit comes back only once all of it was used, in steps that do not line up with frames.
        if (f.type === DATA && got === credit) {
          credit += 40 * KiB + 7;
          raw.send({ t: "window", id: 1, inc: 40 * KiB + 7 });
        }
        if (f.type === FIN) raw.send({ t: "fin", id: 1 });
      };
      const { near, peer } = localPair(seeds.visitor(1), seeds.target(1));
      const stream = side.session.openStream(near, OPEN) as Stream;
      bindLocal(stream, near);
      peer.send(BYTES, true);
      await waitFor(() => side.ends.length === 1, "the stream ended", 10_000);
      expect(overruns).toBe(0);
      expect(verifier.ok(BYTES)).toBe(true);
      expect(side.ends[0]?.code).toBeNull();
    });
  });

  describe("stream ids", () => {
    const open = (id: number) => ({ t: "open" as const, id, open: OPEN });
    /** What the raw server does, the GOAWAY's last stream id, and how the agent's streams end (aborted: CANCEL). */
    const cases: [string, (raw: RawPeer, side: SessionSide) => Promise<void>, number, (number | null)[]][] = [
      ["an OPEN for a stream that is open", async (raw) => raw.send(open(1), open(1)), 1, [WireCode.CANCEL]],
      ["an OPEN for a stream that was reset", async (raw) => raw.send(open(1), { t: "rst", id: 1, code: WireCode.TARGET_ERROR }, open(1)), 1, [WireCode.TARGET_ERROR]],
      ["an OPEN that skips an id", async (raw) => raw.send(open(1), open(3)), 1, [WireCode.CANCEL]],
      ["a first OPEN with an id other than 1", async (raw) => raw.send(open(2)), 0, []],
      [
        "an OPEN for a stream that finished cleanly",
        async (raw, side) => {
          raw.send(open(1), { t: "fin", id: 1 });
          await waitFor(() => side.ends.length === 1, "stream 1 finished");
          raw.send(open(1));
        },
        1,
        [null],
      ],
    ];
    for (const [what, act, last, ends] of cases) {
      test(`agent: ${what} → GOAWAY PROTOCOL_ERROR (last id ${last}), open streams aborted, no RST`, async () => {
        const { side, raw } = await h.facingRaw("agent", {}, (stream) => {
          const { near, peer } = localPair(seeds.target(stream.id), seeds.visitor(stream.id));
          stream.attach(near);
          bindLocal(stream, near);
          stream.acknowledge();
          peer.finish();
        });
        await act(raw, side);
        const g = await goAwayAndFin(raw);
        expect([g.code, g.last]).toEqual([WireCode.PROTOCOL_ERROR, last]);
        expect(closeCode(side)).toBe("ERR_PROTOCOL");
        expect(side.ends.map((e) => e.code)).toEqual(ends);
        expect(raw.all(RST)).toEqual([]);
        expect(side.session.activeStreams).toBe(0);
      });
    }

    test("server: an OPEN from the agent → GOAWAY PROTOCOL_ERROR", async () => {
      const { side, raw } = await h.facingRaw("server");
      raw.send(open(1));
      const g = await goAwayAndFin(raw);
      expect([g.code, g.last]).toEqual([WireCode.PROTOCOL_ERROR, 0]);
      expect(closeCode(side)).toBe("ERR_PROTOCOL");
    });
  });

  describe("frames for streams not in the table", () => {
    for (const role of ROLES) {
      test(`${role}: DATA, WINDOW, FIN, ACK and RST for a stream that was reset are ignored`, async () => {
        const { side, raw, stream } = await h.oneStream(role, { local: "fake" });
        raw.send({ t: "rst", id: 1, code: WireCode.CANCEL });
        await waitFor(() => side.ends.length === 1, "stream 1 reset");
        raw.send(
          { t: "data", id: 1, bytes: new Uint8Array(100) },
          { t: "window", id: 1, inc: 1000 },
          { t: "fin", id: 1 },
          { t: "ack", id: 1 },
          { t: "rst", id: 1, code: WireCode.INTERNAL_ERROR },
        );
        await quietAbout(raw, side, 1);
        expect(side.endsOf(stream)).toEqual([WireCode.CANCEL]);
      });

      const never: Ev[] = [
        { t: "data", id: 3, bytes: new Uint8Array(10) },
        { t: "window", id: 3, inc: 10 },
        { t: "fin", id: 3 },
        { t: "rst", id: 3, code: WireCode.NO_ERROR },
        { t: "ack", id: 3 },
      ];
      for (const ev of never) {
        test(`${role}: ${ev.t.toUpperCase()} for a stream never opened → GOAWAY PROTOCOL_ERROR; stream 1 aborted without RST`, async () => {
          const { side, raw, stream } = await h.oneStream(role, { local: "fake" });
          raw.send(ev);
          const g = await goAwayAndFin(raw);
          expect([g.code, g.last]).toEqual([WireCode.PROTOCOL_ERROR, 1]);
          expect(closeCode(side)).toBe("ERR_PROTOCOL");
          expect(side.endsOf(stream)).toEqual([WireCode.CANCEL]);
          expect(raw.all(RST)).toEqual([]);
        });
      }
    }

    test("server: a repeated ACK changes nothing and is reported once", async () => {
      const { side, raw, stream } = await h.oneStream("server", { local: "fake", ack: false });
      raw.send({ t: "ack", id: 1 }, { t: "ack", id: 1 }, { t: "ack", id: 1 });
      await quietAbout(raw, side, 1);
      expect(side.acked).toEqual([stream]);
      expect(side.endsOf(stream)).toEqual([]);
      expect(side.closedWith).toBeUndefined();
    });

    test("agent: an ACK for its own open stream → GOAWAY PROTOCOL_ERROR", async () => {
      const { side, raw } = await h.oneStream("agent", { local: "fake" });
      raw.send({ t: "ack", id: 1 });
      expect((await goAwayAndFin(raw)).code).toBe(WireCode.PROTOCOL_ERROR);
      expect(closeCode(side)).toBe("ERR_PROTOCOL");
    });
  });

  describe("flow-control and state violations reset the stream, not the connection", () => {
    for (const role of ROLES) {
      test(`${role}: DATA beyond the window → RST FLOW_CONTROL_ERROR (exactly the window is fine)`, async () => {
        const { side, raw, stream, fake } = await h.oneStream(role, { local: "fake" });
        const src = new PatternSource(5);
        for (let i = 0; i < 4; i++) raw.send(dataEv(1, src, 16 * KiB)); // the whole 64 KiB window, nothing returned
        await quietAbout(raw, side, 1);
        raw.send(dataEv(1, src, 1));
        expect((await raw.next(RST, 1, "RST")).code).toBe(WireCode.FLOW_CONTROL_ERROR);
        await quietAbout(raw, side, 1, 1);
        expect(side.endsOf(stream)).toEqual([WireCode.FLOW_CONTROL_ERROR]);
        expect(fake?.terminated).toBe(true);
        expect(side.session.activeStreams).toBe(0);
      });

      test(`${role}: DATA after FIN → RST STREAM_CLOSED`, async () => {
        const { side, raw, stream, fake } = await h.oneStream(role, { local: "fake" });
        raw.send({ t: "fin", id: 1 }, { t: "data", id: 1, bytes: Uint8Array.of(1) });
        expect((await raw.next(RST, 1, "RST")).code).toBe(WireCode.STREAM_CLOSED);
        await quietAbout(raw, side, 1, 1);
        expect(side.endsOf(stream)).toEqual([WireCode.STREAM_CLOSED]);
        expect(fake?.terminated).toBe(true);
      });

      test(`${role}: a WINDOW that takes the credit past 2^31-1 → RST FLOW_CONTROL_ERROR (up to it is fine)`, async () => {
        const { side, raw, stream } = await h.oneStream(role, { local: "fake" });
        raw.send({ t: "window", id: 1, inc: 2 ** 31 - 1 - 64 * KiB });
        await quietAbout(raw, side, 1);
        raw.send({ t: "window", id: 1, inc: 1 });
        expect((await raw.next(RST, 1, "RST")).code).toBe(WireCode.FLOW_CONTROL_ERROR);
        expect(side.endsOf(stream)).toEqual([WireCode.FLOW_CONTROL_ERROR]);
        await quietAbout(raw, side, 1, 1);
      });
    }
  });

  describe("RST in every stream state", () => {
    /** Puts stream 1 in a state (`local` is null only for an agent stream before its ACK); returns the RST code to use. */
    type Enter = (s: { raw: RawPeer; local: LocalPeer | null; role: Role }) => Promise<number>;
    const states: [string, boolean, Enter][] = [
      ["before ACK", false, async () => WireCode.CONNECT_REFUSED],
      [
        "open, bytes flowing both ways",
        true,
        async ({ raw, local, role }) => {
          const peer = local as LocalPeer;
          const [toLocal, fromLocal] = role === "server" ? [seeds.target(1), seeds.visitor(1)] : [seeds.visitor(1), seeds.target(1)];
          const check = raw.expectData(1, fromLocal);
          raw.send(dataEv(1, new PatternSource(toLocal), 5000));
          peer.send(3000);
          await waitFor(() => peer.got(5000) && check.ok(3000), "bytes both ways, exact");
          return WireCode.TARGET_ERROR;
        },
      ],
      [
        "half-closed local (FIN sent)",
        true,
        async ({ raw, local }) => {
          (local as LocalPeer).finish();
          await raw.next(FIN, 1, "FIN");
          return 0xfffffff0; // a code this version does not know: acted on all the same
        },
      ],
      [
        "half-closed remote (FIN received)",
        true,
        async ({ raw, local }) => {
          raw.send({ t: "fin", id: 1 });
          await waitFor(() => (local as LocalPeer).ended, "the local socket got the FIN");
          return WireCode.CANCEL;
        },
      ],
    ];
    for (const role of ROLES) {
      for (const [state, ack, enter] of states) {
        test(`${role}: ${state}: the stream ends with the RST's code, its local socket is reset, nothing is sent back`, async () => {
          const { side, raw, stream, local } = await h.oneStream(role, { ack });
          const code = await enter({ raw, local, role });
          raw.send({ t: "rst", id: 1, code });
          await waitFor(() => side.ends.length === 1, "the stream ended");
          expect(side.endsOf(stream)).toEqual([code]);
          if (local !== null) {
            await waitFor(() => local.closed, "the local socket closed");
            expect((local.closeError as Error & { code?: string } | undefined)?.code).toBe("ECONNRESET");
          }
          if (role === "agent" && !ack) stream.acknowledge(); // the dial finished after the RST: no ACK may follow
          await quietAbout(raw, side, 1);
          expect(raw.all(ACK, 1).length).toBe(role === "agent" && ack ? 1 : 0);
          expect(side.session.activeStreams).toBe(0);
        });
      }

      test(`${role}: after both FINs (closed): an RST is ignored`, async () => {
        const { side, raw, stream, local } = await h.oneStream(role);
        const peer = local as LocalPeer;
        peer.finish();
        raw.send({ t: "fin", id: 1 });
        await waitFor(() => side.ends.length === 1, "the stream finished");
        raw.send({ t: "rst", id: 1, code: WireCode.CANCEL });
        await quietAbout(raw, side, 1);
        expect(side.endsOf(stream)).toEqual([null]);
        await waitFor(() => peer.closed, "the local socket closed");
        expect(peer.closeError).toBeUndefined();
      });
    }
  });

  describe("GOAWAY", () => {
    for (const who of ROLES) {
      test(`${who} sends GOAWAY with 3 streams mid-transfer: they finish byte-exact; the server opens no new stream`, async () => {
        const BYTES = 512 * KiB;
        const { server, agent, targets, visit } = await h.realPair(BYTES);
        // The visitors send half, then wait for the GOAWAY to arrive before they send the rest and FIN.
        const visitors = Array.from({ length: 3 }, () => visit(BYTES / 2, false));
        await waitFor(() => targets.size === 3 && [...targets.values()].every((t) => t.verifier.received === BYTES / 2), "half of every upload");
        (who === "server" ? server : agent).session.goAway(WireCode.SHUTTING_DOWN);
        const other = who === "server" ? agent : server;
        await waitFor(() => other.goAways.length === 1, "the GOAWAY arrived");
        expect(other.goAways).toEqual([WireCode.SHUTTING_DOWN]);
        expect(server.session.openStream(new FakeLocal(), OPEN)).toBeNull();
        expect(server.session.activeStreams).toBe(3);
        for (const { visitor } of visitors) visitor.send(BYTES / 2, true);
        await waitFor(() => server.ends.length === 3 && agent.ends.length === 3, "the streams finished", 15_000);
        for (const { stream, visitor } of visitors) {
          expect(visitor.got(BYTES)).toBe(true);
          expect(targets.get(stream.id)?.got(BYTES)).toBe(true);
        }
        expect([...server.ends, ...agent.ends].map((e) => e.code)).toEqual(Array(6).fill(null));
        expect(server.session.streamsOpened).toBe(3);
        expect([server.closedWith, agent.closedWith]).toEqual([undefined, undefined]);
      }, 20_000);
    }

    test("the server's GOAWAY carries the highest stream id and code; no OPEN follows; open streams go on", async () => {
      const { side, raw } = await h.facingRaw("server");
      const fakes = [new FakeLocal(), new FakeLocal()];
      for (const f of fakes) side.session.openStream(f, OPEN);
      side.session.goAway(WireCode.SHUTTING_DOWN);
      const g = await raw.next(GOAWAY);
      expect([g.last, g.code]).toEqual([2, WireCode.SHUTTING_DOWN]);
      expect(side.session.openStream(new FakeLocal(), OPEN)).toBeNull();
      raw.send({ t: "ack", id: 2 }, { t: "data", id: 2, bytes: Uint8Array.of(7, 8, 9) });
      await raw.sync();
      expect(raw.all(GOAWAY).length + raw.all(RST).length).toBe(1);
      expect(side.closedWith).toBeUndefined();
      expect(raw.frames.slice(raw.frames.indexOf(g)).filter((f) => f.type === OPEN_T)).toEqual([]);
      expect(fakes[1]?.got).toEqual([7, 8, 9]);
      expect(side.session.activeStreams).toBe(2);
    });
  });

  test("read budget: 64 uploading streams behind a connection nobody reads all pause (≤ 8 MiB + one read held), resume at ≤ 4 MiB, and deliver every byte", async () => {
    const STREAMS = 64;
    const EACH = 512 * KiB;
    const READ = 256 * KiB;
    // session-core.ts PENDING_OUT_BUDGET_BYTES: unsent local bytes of a session before every stream stops reading.
    const BUDGET = 8 * MiB;
    const { side, raw } = await h.facingRaw("server", { peerWindow: 64 * MiB, highWaterBytes: 256 * KiB });
    raw.conn.socket.pause();
    raw.onFrame = (f) => {
      if (f.type === FIN) raw.send({ t: "fin", id: f.streamId });
    };
    const streams: { stream: Stream; near: MemorySocket; peer: LocalPeer; check: PatternVerifier }[] = [];
    const held = () => streams.reduce((n, s) => n + s.near.bytesReceived - s.stream.bytesOut, 0);
    let allPaused = false;
    let heldAtResume = -1;
    for (let id = 1; id <= STREAMS; id++) {
      // Each read of a local socket is 256 KiB (Bun delivers up to 512 KiB).
      const { near, peer } = localPair(seeds.visitor(id), 0, { bufferBytes: 2 * READ, maxWriteBytes: Infinity, minChunkBytes: READ, maxChunkBytes: READ });
      const stream = side.session.openStream(near, OPEN) as Stream;
      bindLocal(stream, near);
      near.onPauseChange = (paused) => {
        if (!paused && allPaused && heldAtResume < 0) heldAtResume = held();
      };
      streams.push({ stream, near, peer, check: raw.expectData(id, seeds.visitor(id)) });
      peer.send(EACH, true);
    }
    await waitFor(() => streams.every((s) => s.near.paused && (s.peer.done || s.peer.socket.writeBlocked)), "every stream paused, every visitor blocked", 10_000);
    allPaused = true;
    const heldPaused = held();
    expect(heldPaused).toBeGreaterThan(BUDGET / 2);
    expect(heldPaused).toBeLessThanOrEqual(BUDGET + READ);
    // Streams with nothing left to send are paused too: the budget, not their own backlog, stops them.
    expect(streams.filter((s) => s.near.bytesReceived === s.stream.bytesOut).length).toBeGreaterThan(0);
    raw.conn.socket.resume();
    await waitFor(() => side.ends.length === STREAMS, "every stream finished", 15_000);
    // Resumed once the unsent bytes fell to half the budget, within one DATA frame.
    expect(heldAtResume).toBeLessThanOrEqual(BUDGET / 2);
    expect(heldAtResume).toBeGreaterThan(BUDGET / 2 - 16 * KiB);
    expect(streams.every((s) => s.check.ok(EACH))).toBe(true);
    expect(side.ends.every((e) => e.code === null)).toBe(true);
  }, 30_000);

  describe("liveness", () => {
    test("PINGs are answered with PONGs carrying the same 8 bytes, in order", async () => {
      const { raw } = await h.facingRaw("agent");
      const rng = new Prng(99);
      const opaques = [rng.bytes(8), rng.bytes(8), rng.bytes(8)];
      raw.send(...opaques.map((opaque) => ({ t: "ping" as const, opaque })));
      await waitFor(() => raw.all(PONG).length === 3, "3 PONGs");
      expect(raw.all(PONG).map((f) => [...f.payload])).toEqual(opaques.map((o) => [...o]));
    });

    test("two sessions with a 10 ms heartbeat measure round trips and stay up across three 100 ms timeouts", async () => {
      const beat = { heartbeatIntervalMs: 10, heartbeatTimeoutMs: 100 };
      const { server, agent } = await h.realPair(0, beat, beat);
      const t0 = performance.now();
      await waitFor(() => server.rtts >= 20 && agent.rtts >= 20 && performance.now() - t0 > 300, "20 round trips each");
      expect([server.closedWith, agent.closedWith]).toEqual([undefined, undefined]);
    });

    test("a peer silent past the keepalive timeout → GOAWAY KEEPALIVE_TIMEOUT after the PINGs, then FIN", async () => {
      const t0 = performance.now();
      const { side, raw } = await h.facingRaw("agent", { heartbeatIntervalMs: 10, heartbeatTimeoutMs: 60 });
      const g = await goAwayAndFin(raw);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(60);
      expect(g.code).toBe(WireCode.KEEPALIVE_TIMEOUT);
      expect(closeCode(side)).toBe("ERR_KEEPALIVE_TIMEOUT");
      expect(raw.frames.indexOf(g)).toBeGreaterThan(0); // PINGs came first
      expect(raw.frames.slice(0, raw.frames.indexOf(g)).every((f) => f.type === FrameType.PING)).toBe(true);
    });

    test("a peer that floods PINGs without reading → GOAWAY ENHANCE_YOUR_CALM (ERR_CONTROL_FLOOD)", async () => {
      const { side, raw } = await h.facingRaw("agent", { controlQueueMaxBytes: 16 * KiB });
      raw.conn.socket.pause();
      const PER_BATCH = 10_000;
      const batch = new Uint8Array(18 * PER_BATCH);
      for (let i = 0; i < PER_BATCH; i++) batch.set([FrameType.PING, 0, 0, 0, 0, 0, 0, 0, 0, 8], 18 * i);
      let sent = 0;
      while (side.closedWith === undefined && sent < 2_000_000) {
        if (raw.queuedBytes < MiB) {
          raw.sendBytes(batch);
          sent += PER_BATCH;
        }
        await new Promise((r) => setImmediate(r));
      }
      expect(closeCode(side)).toBe("ERR_CONTROL_FLOOD");
      raw.conn.socket.resume();
      const g = await goAwayAndFin(raw);
      expect(g.code).toBe(WireCode.ENHANCE_YOUR_CALM);
      expect(raw.frames[raw.frames.length - 1]).toBe(g); // the last frame
      console.log(`  ${transport.name}: flood cut off after ${sent} PINGs, ${raw.all(PONG).length} PONGs`);
    }, 20_000);
  });
});
