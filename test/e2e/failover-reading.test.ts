/**
 * A visitor moved to another agent after a refusal (routes.ts retry) must follow the new stream's reading state:
 * when the new connection is over its read budget, the visitor stays paused. Real route listener and visitor
 * socket; the agents are Sessions over fake connections, driven through their frame handlers.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ServerConfig } from "../../src/config.ts";
import { openRoutes } from "../../src/server/routes.ts";
import { Registry, type Host } from "../../src/server/registry.ts";
import { ServerStats } from "../../src/server/stats.ts";
import { Session } from "../../src/mux/session.ts";
import type { Stream } from "../../src/mux/stream.ts";
import type { SessionOptions } from "../../src/mux/session-options.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import { WireCode } from "../../src/protocol/constants.ts";
import type { Listener } from "../../src/transport/listener.ts";
import { PatternSource } from "../support/pattern.ts";
import { waitFor } from "../support/net.ts";
import { FakeLocal } from "../support/mux-fakes.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const OPEN = { service: "echo", visitorAddress: "127.0.0.1", visitorPort: 1, routeAddress: "127.0.0.1", routePort: 2 };

/** An agent connection: keeps every byte the server session writes, and the DATA payloads per stream. */
class FakeConn {
  readonly data = new Map<number, number[]>();
  readonly fins = new Set<number>();
  private readonly decoder = new FrameDecoder(
    {
      handleData: (id, p) => {
        const a = this.data.get(id) ?? [];
        for (const b of p) a.push(b);
        this.data.set(id, a);
      },
      handleOpen() {},
      handleAck() {},
      handleFin: (id) => void this.fins.add(id),
      handleRst() {},
      handleWindow() {},
      handlePing() {},
      handlePong() {},
      handleControl() {},
      handleGoAway() {},
    },
    { maxFrameBytes: 256 * KiB },
  );
  write(d: Uint8Array, off = 0, len = d.byteLength - off): number {
    this.decoder.push(d.slice(off, off + len));
    return len;
  }
  shutdown(): void {}
  terminate(): void {}
}


function host(name: string, peerWindow: number): { host: Host; conn: FakeConn } {
  const opts: SessionOptions = {
    role: "server", localWindow: 2 * MiB, peerWindow, localMaxFrame: 256 * KiB, peerMaxFrame: 256 * KiB,
    maxStreams: 16, heartbeatIntervalMs: 0, heartbeatTimeoutMs: 0,
  };
  const conn = new FakeConn();
  const session = new Session(conn, opts, { onClose() {} });
  return {
    conn,
    host: { connectionId: name, cluster: "edge", hostName: name, weight: 1, slot: 0, instance: name, remoteAddress: "127.0.0.1", connectedAt: 0, session },
  };
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

describe("retry onto a connection over its read budget", () => {
  test("the visitor stays paused until that connection's budget frees up, then every byte arrives", async () => {
    const config = { routes: [{ listen: { host: "127.0.0.1", port: 0 }, cluster: "edge", service: "echo", match: null }] } as unknown as ServerConfig;
    const registry = new Registry(["edge"]);
    const stats = new ServerStats();
    const a = host("a", 2 * MiB);
    const b = host("b", 16 * KiB);
    registry.add(a.host, 60_000);
    const { listeners } = openRoutes(config, registry, stats);
    cleanup.push(() => listeners.forEach((l) => l.stop(true)));

    // Agent b's connection is over its read budget: one of its streams holds 9 MiB it has no credit for.
    const hog = b.host.session.openStream(new FakeLocal(), OPEN) as Stream;
    hog.onData(new PatternSource(1).next(9 * MiB, true));
    expect(b.host.session.readsPaused).toBe(true);

    // Record what happens to the visitor socket once it is handed to b.
    const calls: string[] = [];
    const bSession = b.host.session;
    const openOnB = bSession.openStream.bind(bSession);
    let moved: Stream | null = null;
    bSession.openStream = (local, open) => {
      const s = local as unknown as { pause(): void; resume(): void };
      const pause = s.pause.bind(s);
      const resume = s.resume.bind(s);
      s.pause = () => (calls.push("pause"), pause());
      s.resume = () => (calls.push("resume"), resume());
      moved = openOnB(local, open);
      return moved;
    };

    const source = new PatternSource(77);
    const first = source.next(10 * KiB, true);
    const rest = source.next(4 * MiB, true);
    const expected = Buffer.concat([Buffer.from(first), Buffer.from(rest)]);
    let off = 0;
    let ended = false;
    const pushRest = (s: { write(d: Uint8Array, o: number, l: number): number; end(): void }) => {
      while (off < rest.byteLength) {
        const n = s.write(rest, off, rest.byteLength - off);
        if (n <= 0) return;
        off += n;
      }
      if (!ended) s.end();
      ended = true;
    };
    let sendRest = false;
    const visitor = await Bun.connect({
      hostname: "127.0.0.1",
      port: listeners[0]?.port as number,
      allowHalfOpen: true,
      socket: {
        data() {},
        drain(s) {
          if (sendRest) pushRest(s);
        },
      },
    });
    cleanup.push(() => visitor.terminate());
    expect(visitor.write(first)).toBe(first.byteLength);
    await waitFor(() => (a.conn.data.get(1)?.length ?? 0) === first.byteLength, "the first bytes on agent a");

    registry.add(b.host, 60_000);
    a.host.session.handleRst(1, WireCode.CONNECT_REFUSED); // agent a refuses before its ACK
    expect(moved).not.toBeNull();
    expect(stats.retriedByRouteCode.get("edge/echo\u0000CONNECT_REFUSED")).toBe(1);
    // b is over budget: the visitor must end up paused (the last call wins).
    expect(calls.at(-1)).toBe("pause");

    sendRest = true;
    pushRest(visitor);
    // Free b's budget (credit for the hog), then give the moved stream room: every byte arrives, in order, then FIN.
    const next = moved as unknown as Stream;
    bSession.handleWindow(hog.id, 16 * MiB);
    expect(bSession.readsPaused).toBe(false);
    bSession.handleWindow(next.id, 16 * MiB);
    await waitFor(() => b.conn.fins.has(next.id), "the visitor's FIN on agent b", 20_000);
    const got = Buffer.from(b.conn.data.get(next.id) ?? []);
    expect(got.byteLength).toBe(expected.byteLength);
    expect(got.equals(expected)).toBe(true);
    bSession.close();
    a.host.session.close();
  }, 30_000);
});
