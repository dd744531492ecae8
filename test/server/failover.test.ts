/**
 * Server streams keep what the visitor sent until the agent's ACK, so a refusal before it (SPEC §2.2) can hand
 * the visitor to another agent with every byte: the replay is exact, capped, and never offered after an ACK or for
 * a code that may have reached the target.
 */
import { describe, expect, test } from "bun:test";
import { Session } from "../../src/mux/session.ts";
import type { Stream } from "../../src/mux/stream.ts";
import type { SessionOptions } from "../../src/mux/session-options.ts";
import { WireCode } from "../../src/protocol/constants.ts";
import { PatternSource } from "../support/pattern.ts";
import { FakeLocal } from "../support/mux-fakes.ts";
import { VisitorFailover } from "../../src/server/failover.ts";
import type { SocketSlot } from "../../src/transport/tcp.ts";

const KiB = 1024;
const OPEN = { service: "svc", visitorAddress: "127.0.0.1", visitorPort: 1, routeAddress: "127.0.0.1", routePort: 2 };
const bytes = (seed: number, n: number): Uint8Array => new PatternSource(seed).next(n, true);
const concat = (chunks: Uint8Array[]): Buffer => Buffer.concat(chunks.map((c) => Buffer.from(c)));


const conn = { write: (d: Uint8Array) => d.byteLength, shutdown() {}, terminate() {} };
const OPTS: SessionOptions = {
  role: "server", localWindow: 2048 * KiB, peerWindow: 2048 * KiB, localMaxFrame: 256 * KiB, peerMaxFrame: 256 * KiB,
  maxStreams: 8, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0,
};

/** A visitor's stream watched by a VisitorFailover whose "other agent" is a spy stream recording what it is given. */
function serverStream(peerWindow = 2048 * KiB) {
  const session = new Session(conn, { ...OPTS, peerWindow }, { onClose() {} });
  const other = new Session(conn, OPTS, { onClose() {} });
  const local = new FakeLocal();
  const socket: { data: SocketSlot } = { data: { owner: null } };
  const stream = session.openStream(local, OPEN) as Stream;
  socket.data.owner = stream;
  const offered: { code: number; chunks: Uint8Array[]; eof: boolean; next: Stream }[] = [];
  let accept = true;
  stream.watchOpening(
    new VisitorFailover(socket, stream, (code) => {
      if (!accept) return null;
      const next = other.openStream(local, OPEN) as Stream;
      const got = { code, chunks: [] as Uint8Array[], eof: false, next };
      next.onData = (c) => void got.chunks.push(c.slice());
      next.onEnd = () => void (got.eof = true);
      offered.push(got);
      return next;
    }),
  );
  return { session, stream, local, socket, offered, refuseRetry: () => (accept = false) };
}

describe("replay for a refused stream", () => {
  test("a refusal before ACK hands over exactly what the visitor sent, and its FIN, without touching the socket", () => {
    const { session, stream, local, socket, offered } = serverStream();
    const sent = bytes(1, 10 * KiB);
    stream.onData(sent.slice(0, 4 * KiB));
    stream.onData(sent.slice(4 * KiB));
    stream.onEnd();
    session.handleRst(stream.id, WireCode.CONNECT_REFUSED);
    expect(offered.length).toBe(1);
    expect(offered[0]?.code).toBe(WireCode.CONNECT_REFUSED);
    expect(concat(offered[0]?.chunks ?? []).equals(Buffer.from(sent))).toBe(true);
    expect(offered[0]?.eof).toBe(true);
    expect(local.terminated).toBe(false);
    expect(socket.data.owner).toBe(offered[0]?.next ?? null);
    expect(stream.state).toBe("moved");
    expect(stream.end).toBe(WireCode.CONNECT_REFUSED);
    expect(session.activeStreams).toBe(0);
    session.close();
  });

  test("bytes still waiting for credit are handed over too, after those already sent", () => {
    const { session, stream, offered } = serverStream(16 * KiB);
    const sent = bytes(2, 40 * KiB);
    stream.onData(sent); // 16 KiB go out, 24 KiB wait for a WINDOW
    session.handleRst(stream.id, WireCode.REFUSED_STREAM);
    expect(offered.length).toBe(1);
    expect(concat(offered[0]?.chunks ?? []).equals(Buffer.from(sent))).toBe(true);
    expect(offered[0]?.eof).toBe(false);
    session.close();
  });

  for (const [what, setup] of [
    ["more than 64 KiB were sent", (s: Stream) => s.onData(bytes(3, 65 * KiB))],
    ["the agent had acknowledged", (s: Stream, session: Session) => (s.onData(bytes(4, 1000)), session.handleAck(s.id))],
  ] as const) {
    test(`no retry when ${what}: the visitor is reset`, () => {
      const { session, stream, local, offered } = serverStream();
      setup(stream, session);
      session.handleRst(stream.id, WireCode.CONNECT_REFUSED);
      expect(offered.length).toBe(0);
      expect(local.terminated).toBe(true);
      expect(stream.state).toBe("closed");
      session.close();
    });
  }

  test("no retry for codes that may have reached the target", () => {
    for (const code of [WireCode.TARGET_ERROR, WireCode.CANCEL, WireCode.INTERNAL_ERROR, WireCode.FLOW_CONTROL_ERROR, 999]) {
      const { session, stream, local, offered } = serverStream();
      stream.onData(bytes(5, 100));
      session.handleRst(stream.id, code);
      expect(offered.length).toBe(0);
      expect(local.terminated).toBe(true);
      session.close();
    }
  });

  test("when no other agent takes it, the visitor is reset as before", () => {
    const { session, stream, local, offered, refuseRetry } = serverStream();
    refuseRetry();
    stream.onData(bytes(6, 100));
    session.handleRst(stream.id, WireCode.UNKNOWN_SERVICE);
    expect(offered.length).toBe(0);
    expect(local.terminated).toBe(true);
    expect(stream.end).toBe(WireCode.UNKNOWN_SERVICE);
    session.close();
  });
});
