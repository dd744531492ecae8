/**
 * TUNNEL_STREAM_IDLE_TIMEOUT_MS (SPEC.md §2.2): a visitor that sends nothing to a target that never reads, writes or
 * closes holds a stream until the timeout, then the stream is reset with IDLE_TIMEOUT, whichever side has the
 * timeout set; a stream that keeps moving bytes meanwhile is untouched and stays byte-exact.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { WireCode } from "../../src/protocol/constants.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { heldVisitor } from "../support/security-net.ts";

const TIMEOUT_MS = 400;

let echo: TestServer;
let mute: TCPSocketListener<undefined>;
const muteSockets: Socket<undefined>[] = [];

beforeAll(() => {
  echo = startEchoServer();
  // A target that accepts, then never reads, writes or closes.
  mute = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.pause();
        muteSockets.push(s);
      },
      data() {},
    },
  });
});
afterEach(() => stopAll());
afterAll(() => {
  echo.stop();
  mute.stop(true);
});

/** A visitor that connects and sends nothing; resolves with ms from connect to close. */
function silentVisitor(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: { data() {}, close: () => resolve(performance.now() - started), connectError: (_s, e) => reject(e) },
    }).catch(reject);
  });
}

describe.each([["server"], ["agent"]] as const)("TUNNEL_STREAM_IDLE_TIMEOUT_MS on the %s", (side) => {
  test("a silent stream is reset with IDLE_TIMEOUT after the timeout; a busy one on the same connection is not", async () => {
    const idle = { TUNNEL_STREAM_IDLE_TIMEOUT_MS: String(TIMEOUT_MS) };
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/mute,127.0.0.1:0=edge/echo", ...(side === "server" ? idle : {}) });
    const a = await agent(srv, {
      TUNNEL_CLUSTER: "edge",
      TUNNEL_CONNECTIONS: "1",
      TUNNEL_SERVICES: `mute=127.0.0.1:${mute.port},echo=127.0.0.1:${echo.port}`,
      ...(side === "agent" ? idle : {}),
    });
    const [mutePort, echoPort] = srv.routePorts as [number, number];
    const busy = await heldVisitor(echoPort);
    const accepted = muteSockets.length;
    let closedAfterMs = -1;
    void silentVisitor(mutePort).then((ms) => (closedAfterMs = ms));
    await waitFor(() => muteSockets.length > accepted, "the mute target to accept");
    // Keep the busy stream moving, round trip after round trip, until well past the silent one's reset.
    const deadline = performance.now() + 5_000;
    for (let trips = 0; closedAfterMs < 0 || trips < 20; trips++) {
      if (!(await busy.roundTrip(1024 + (trips % 4096)))) throw new Error(`busy stream broken after ${trips} round trips`);
      if (performance.now() > deadline) throw new Error("the silent stream was never reset");
    }
    const resetAt = performance.now();
    while (performance.now() - resetAt < 1.5 * TIMEOUT_MS) {
      if (!(await busy.roundTrip(512))) throw new Error("busy stream broken after the silent one's reset");
    }
    expect(closedAfterMs).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(closedAfterMs).toBeLessThan(TIMEOUT_MS * 1.25 + 1_000);
    expect(busy.isClosed()).toBe(false);
    expect(await busy.roundTrip(256 * 1024)).toBe(true);
    busy.close();
    // The side that timed out says so; the other side ended the stream on its RST.
    if (side === "server") expect(srv.stats.resetsByCode.get(WireCode.IDLE_TIMEOUT)).toBe(1);
    else await waitFor(() => [...a.stats.resets.keys()].includes("mute\u0000IDLE_TIMEOUT"), "the agent's IDLE_TIMEOUT reset");
  }, 15_000);
});
