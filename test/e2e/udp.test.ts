/** UDP routes end to end (SPEC.md §2.5): datagrams whole and byte-exact both ways, per visitor address. */
import { afterEach, expect, test } from "bun:test";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { waitFor } from "../support/net.ts";
import { udpClient, udpEcho } from "../support/udp.ts";

afterEach(() => stopAll());

test("a datagram goes through a /udp route to a /udp service and its echo comes back", async () => {
  const echo = await udpEcho();
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/echo" });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}/udp` });
  const c = await udpClient();
  c.send("hello", srv.routePorts[0] as number);
  await waitFor(() => c.received.length === 1, 5000);
  expect(new TextDecoder().decode(c.received[0])).toBe("hello");
  c.close();
  echo.close();
});
