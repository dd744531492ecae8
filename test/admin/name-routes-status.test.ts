/** Routes by name as the admin endpoint shows them: /api/status names each route and counts, /metrics has the routed and unrouted counters. */
import { afterAll, afterEach, expect, test } from "bun:test";
import { rawVisitor, startRecorder } from "../support/name-routes.ts";
import { waitFor } from "../support/net.ts";
import { fixture } from "../support/tls-hello.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { parseProm, sampleValue } from "./prom.ts";

const rec = startRecorder();
afterEach(stopAll);
afterAll(() => rec.stop());

test("/api/status and /metrics show routes with their names, visitors routed by name and the unrouted by reason", async () => {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/rec;sni=app.example.com,127.0.0.1:0=edge/rec;sni=*.example.org,127.0.0.1:0=edge/rec,127.0.0.2:0=edge/rec",
    TUNNEL_ADMIN_LISTEN: "0",
  });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: `rec=127.0.0.1:${rec.port}` });
  const port = srv.routePorts[0] as number;
  await rawVisitor(port, [fixture("curl.bin")], { fin: true });
  await rawVisitor(port, [fixture("openssl-noservername.bin")], { fin: true });
  await rawVisitor(port, [new TextEncoder().encode("not tls")], { fin: true });
  await waitFor(() => srv.stats.streamsActive === 0 && rec.connections.length >= 2, "streams to end");

  const status = (await (await fetch(`http://127.0.0.1:${srv.adminPort}/api/status`)).json()) as {
    totals: { visitorsUnrouted: number };
    routes: { listen: string; name: string; match: unknown; routed: number | null; streamsTotal: number }[];
  };
  expect(status.totals.visitorsUnrouted).toBe(1);
  expect(status.routes.map((r) => [r.listen, r.name, r.routed])).toEqual([
    [`127.0.0.1:${port}`, "sni=app.example.com", 1],
    [`127.0.0.1:${port}`, "sni=*.example.org", 0],
    [`127.0.0.1:${port}`, "default", 1],
    [`127.0.0.2:${srv.routePorts[3]}`, "", null],
  ]);
  expect(status.routes[1]?.match).toEqual({ kind: "sni", name: "*.example.org" });

  const prom = parseProm(await (await fetch(`http://127.0.0.1:${srv.adminPort}/metrics`)).text());
  const listen = `127.0.0.1:${port}`;
  const routed = (name: string) => sampleValue(prom, "backchannel_server_name_routed_total", { listen, match: "sni", name, cluster: "edge", service: "rec" });
  expect([routed("app.example.com"), routed("*.example.org"), routed("")]).toEqual([1, 0, 1]);
  expect(sampleValue(prom, "backchannel_server_name_unrouted_total", { listen, match: "sni", reason: "not_tls" })).toBe(1);
  expect(prom.get("backchannel_server_name_routed_total")?.samples).toHaveLength(3);
}, 20_000);
