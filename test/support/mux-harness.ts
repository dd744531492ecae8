/**
 * Set-ups of the mux suite (test/mux/suite.test.ts) over any Transport: a session facing a raw peer, a session with
 * one stream (id 1) in a known state facing a raw peer, and a real server/agent session pair whose agent serves every
 * OPEN with a LocalPeer. Everything made is reset by {@link MuxHarness.cleanup}.
 */
import type { SessionOptions } from "../../src/mux/session-options.ts";
import type { Stream } from "../../src/mux/stream.ts";
import { FrameType } from "../../src/protocol/constants.ts";
import { FakeLocal } from "./mux-fakes.ts";
import type { MemorySocket } from "./memory-socket.ts";
import type { Conn, Transport } from "./mux-transports.ts";
import { bindLocal, localPair, LocalPeer, muxOptions, OPEN, RawPeer, SessionSide } from "./mux-peers.ts";
import { waitFor } from "./net.ts";

export type Role = "server" | "agent";

/** Seeds of stream `id`'s bytes: the visitor sends `visitor(id)`, the target `target(id)`. */
export const seeds = { visitor: (id: number) => 20_000 + id, target: (id: number) => 10_000 + id };

/** A session of the role under test with stream 1 open toward a raw peer. */
export interface OneStream {
  side: SessionSide;
  raw: RawPeer;
  stream: Stream;
  /** The test's end of the stream's local socket (when made with `local: "peer"`). */
  local: LocalPeer | null;
  /** The stream's local socket (when made with `local: "fake"`). */
  fake: FakeLocal | null;
}

/** Options for {@link MuxHarness.oneStream}. */
export interface OneStreamOptions {
  /** "peer": a memory pair with a LocalPeer; "fake": a FakeLocal that takes nothing (room 0). Default "peer". */
  local?: "peer" | "fake";
  /** Agent: attach and ACK; server: the raw peer ACKs. Default true. */
  ack?: boolean;
  over?: Partial<SessionOptions>;
}

/** Builds the parties of one test over a transport and resets them afterwards. */
export class MuxHarness {
  private readonly conns: Conn[] = [];

  constructor(readonly transport: Transport) {}

  private async pair(): Promise<[Conn, Conn]> {
    const pair = await this.transport.pair();
    this.conns.push(...pair);
    return pair;
  }

  /** Resets every connection made since the last call. */
  cleanup(): void {
    for (const c of this.conns.splice(0)) c.socket.terminate();
  }

  /** A session of `role` whose peer is a RawPeer. */
  async facingRaw(role: Role, over: Partial<SessionOptions> = {}, onOpen?: (s: Stream, side: SessionSide) => void): Promise<{ side: SessionSide; raw: RawPeer }> {
    const [server, agent] = await this.pair();
    const [mine, theirs] = role === "server" ? [server, agent] : [agent, server];
    const side = new SessionSide(mine, muxOptions(role, over), onOpen);
    return { side, raw: new RawPeer(theirs) };
  }

  /**
   * Stream 1 between a session of `role` and a raw peer. Agent: the raw peer sent OPEN 1, the agent attached the
   * local socket and sent ACK (unless `ack` is false: then it is still "dialling", nothing attached). Server: the
   * session opened it for the local socket, the raw peer got the OPEN and answered ACK (unless `ack` is false).
   */
  async oneStream(role: Role, opts: OneStreamOptions = {}): Promise<OneStream> {
    const ack = opts.ack ?? true;
    let local: LocalPeer | null = null;
    let fake: FakeLocal | null = null;
    /** The stream's local socket, and how to make the stream its owner. */
    const makeLocal = (): { socket: FakeLocal | MemorySocket; bind(stream: Stream): void } => {
      if (opts.local === "fake") {
        fake = new FakeLocal();
        fake.room = 0;
        return { socket: fake, bind() {} };
      }
      const [send, expect] = role === "server" ? [seeds.visitor(1), seeds.target(1)] : [seeds.target(1), seeds.visitor(1)];
      const pair = localPair(send, expect);
      local = pair.peer;
      return { socket: pair.near, bind: (stream) => bindLocal(stream, pair.near) };
    };
    const { side, raw } = await this.facingRaw(role, opts.over, (stream) => {
      if (!ack) return;
      const l = makeLocal();
      stream.attach(l.socket);
      l.bind(stream);
      stream.acknowledge();
    });
    let stream: Stream;
    if (role === "agent") {
      raw.send({ t: "open", id: 1, open: OPEN });
      await waitFor(() => side.opened.length === 1, "OPEN delivered");
      stream = side.opened[0] as Stream;
      if (ack) await raw.next(FrameType.ACK, 1, "ACK");
    } else {
      const l = makeLocal();
      const opened = side.session.openStream(l.socket, OPEN);
      if (opened === null) throw new Error("openStream refused");
      stream = opened;
      l.bind(stream);
      await raw.next(FrameType.OPEN, 1, "OPEN");
      if (ack) {
        raw.send({ t: "ack", id: 1 });
        await waitFor(() => side.acked.length === 1, "ACK delivered");
      }
    }
    return { side, raw, stream, local, fake };
  }

  /**
   * A server session and an agent session connected to each other. The agent serves each OPEN with a LocalPeer
   * (the target) that sends `targetBytes` of seeds.target(id) and half-closes; `targets` holds them by stream id.
   */
  async realPair(targetBytes: number, serverOver: Partial<SessionOptions> = {}, agentOver: Partial<SessionOptions> = {}) {
    const [s, a] = await this.pair();
    const targets = new Map<number, LocalPeer>();
    const server = new SessionSide(s, muxOptions("server", serverOver));
    const agent = new SessionSide(a, muxOptions("agent", agentOver), (stream) => {
      const { near, peer } = localPair(seeds.target(stream.id), seeds.visitor(stream.id));
      targets.set(stream.id, peer);
      stream.attach(near);
      bindLocal(stream, near);
      stream.acknowledge();
      peer.send(targetBytes, true);
    });
    /** Opens a stream from the server for a new visitor that sends `bytes` of seeds.visitor(id), then half-closes if `fin`. */
    const visit = (bytes: number, fin = true): { stream: Stream; visitor: LocalPeer } => {
      const id = server.session.streamsOpened + 1;
      const { near, peer } = localPair(seeds.visitor(id), seeds.target(id));
      const stream = server.session.openStream(near, OPEN);
      if (stream === null) throw new Error("openStream refused");
      if (stream.id !== id) throw new Error(`stream id ${stream.id}, expected ${id}`);
      bindLocal(stream, near);
      peer.send(bytes, fin);
      return { stream, visitor: peer };
    };
    return { server, agent, targets, visit };
  }
}
