/** Stream-id exhaustion: the connection stops taking streams (GOAWAY STREAM_IDS_EXHAUSTED) and the agent replaces it. */
import { afterAll, afterEach, expect, test } from "bun:test";
import { MAX_STREAM_ID } from "../../src/protocol/constants.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const echo = startEchoServer();
afterAll(() => echo.stop());
afterEach(stopAll);

test("ids run out: visitors move to another connection and the agent dials a replacement", async () => {
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0=edge/echo" });
  const a = await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1" });
  const port = srv.routePorts[0] as number;
  const [host] = [...srv.registry.hosts()];
  if (!host) throw new Error("no host");
  // Jump the connection to its last stream id, on both ends (the agent requires ids to increase by exactly 1).
  (host.session as unknown as { nextStreamId: number }).nextStreamId = MAX_STREAM_ID;
  const agentSession = a.slots.find((s) => s.connectionId === host.connectionId)?.session;
  if (!agentSession) throw new Error("no agent session");
  (agentSession as unknown as { highestStreamId: number }).highestStreamId = MAX_STREAM_ID - 1;
  expect((await runVisitor({ port, seed: 1, sendBytes: 1000 })).ok).toBe(true); // uses id 2^31−1
  // The next visitor finds no id left on that connection: it is drained, the agent replaces it.
  await runVisitor({ port, seed: 2, sendBytes: 1000 });
  await waitFor(() => [...srv.registry.hosts()].some((h) => h.connectionId !== host.connectionId), "replacement connection");
  expect(host.session.draining).toBe(true);
  const r = await runVisitor({ port, seed: 3, sendBytes: 100_000 });
  expect(r.ok).toBe(true);
}, 20_000);
