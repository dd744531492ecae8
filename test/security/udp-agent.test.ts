/**
 * A hostile agent on UDP flows (issue 20, SPEC.md §2.5): records split across DATA frames and empty ones are
 * delivered whole; a length over 65,507 (PROTOCOL_ERROR), RST, FIN then RST end the flow, never the connection;
 * and through all of it the connection's datagram-stream count comes back to 0, so UDP's share is never locked out.
 */
import { afterEach, expect, test } from "bun:test";
import { server, stopAll } from "../support/tunnel.ts";
import { waitFor } from "../support/net.ts";
import { udpClient } from "../support/udp.ts";
import { FrameReader, frame, initInfo, rawAgent } from "../support/security-net.ts";
import { WireCode } from "../../src/protocol/constants.ts";

afterEach(() => stopAll());

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

test("a hostile agent's flows: split and empty records delivered whole, bad ones reset; the UDP share stays free", async () => {
  // 8 streams per connection: 4 may be UDP flows. 40 flows pass through one at a time.
  const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "127.0.0.1:0/udp=edge/dns", TUNNEL_MAX_STREAMS_PER_CONNECTION: "8" });
  const raw = await rawAgent(srv.agentPort, initInfo());
  await waitFor(() => srv.registry.pick("edge", null) !== null, "the raw agent is registered");
  const host = srv.registry.pick("edge", null);
  const session = host !== null && host.kind !== "raw" ? host.session : null;
  const reader = new FrameReader();
  const port = srv.udpRoutes[0]?.port as number;
  const t = srv.stats.udp.tally("edge/dns");
  const endings = [
    (id: number) => frame(4, id, u32(WireCode.CANCEL)),
    (id: number) => cat(frame(2, id), frame(0, id, new Uint8Array([0xff, 0xe4]))), // a repeated ACK; length 65,508
    (id: number) => frame(0, id, new Uint8Array([0xff, 0xff, 1, 2])), // length 65,535
    (id: number) => cat(frame(3, id), frame(4, id, u32(WireCode.CANCEL))),
  ];
  for (let i = 0; i < 40; i++) {
    const c = await udpClient();
    c.send(new Uint8Array([i]), port);
    await waitFor(() => {
      for (const ch of raw.received.splice(0)) reader.push(ch);
      return reader.ofType(1).length > i;
    }, `the OPEN of flow ${i}`);
    const id = (reader.ofType(1)[i] as { streamId: number }).streamId;
    // A record of 3 bytes split over three DATA frames (prefix cut in two), then an empty one, then "ok".
    await raw.send(cat(frame(2, id), frame(0, id, new Uint8Array([0])), frame(0, id, new Uint8Array([3, 0x61, 0x62])),
      frame(0, id, new Uint8Array([0x63, 0, 0, 0, 2, 0x6f, 0x6b]))));
    await waitFor(() => c.received.length === 3, `flow ${i}'s three datagrams`);
    expect(c.received.map((d) => new TextDecoder().decode(d))).toEqual(["abc", "", "ok"]);
    await raw.send((endings[i % endings.length] as (id: number) => Uint8Array)(id));
    await waitFor(() => srv.udpRoutes[0]?.flows.size === 0, `flow ${i} ended`);
    expect(session?.datagramStreams).toBe(0);
    c.close();
  }
  expect(t.dropped.get("flow_limit") ?? 0).toBe(0);
  const resets = reader.resets();
  expect([...resets.values()].filter((code) => code === WireCode.PROTOCOL_ERROR).length).toBe(20);
  expect(raw.isClosed()).toBe(false);
}, 30_000);
