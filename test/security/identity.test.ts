/**
 * Identities bound to agents (issue 14, defects 1 and 2), each attack driven by a hostile peer that speaks raw
 * handshake and stream frames: an mtls agent may register only under a name its certificate proves, and an agent's
 * aside connection may drain or re-weight only its own agent instance's connections, whose ids cannot be guessed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { HandshakeStatus } from "../../src/protocol/constants.ts";
import { encodeControl } from "../../src/protocol/control.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";
import { waitFor } from "../support/net.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";
import { frame, initInfo, rawAgent, type RawAgent } from "../support/security-net.ts";
import type { ServerHandle } from "../../src/server/server.ts";

let logs: Capture;
const raws: RawAgent[] = [];

beforeAll(() => {
  testCerts();
  logs = captureLogs("debug");
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.terminate();
  await stopAll();
  logs.clear();
});
afterAll(() => logs.restore());

const hello = (role: "data" | "aside", instance: string, slot = 0) => ({
  backchannel: { version: 1, role, slot, instance, window: 1 << 20, max_frame: 1 << 18 },
});

async function raw(port: number, ...args: Parameters<typeof initInfo>): Promise<RawAgent> {
  const r = await rawAgent(port, initInfo(...args));
  raws.push(r);
  return r;
}

const controlFrame = (msg: Parameters<typeof encodeControl>[0]): Uint8Array => frame(0x09, 0, encodeControl(msg));

describe("defect 1: an mtls agent registers only under a name its certificate proves", () => {
  const clientTls = (which: "agent" | "agent2") => {
    const c = testCerts();
    return { ca: readFileSync(c.ca.cert, "utf8"), cert: readFileSync(c[which].cert, "utf8"), key: readFileSync(c[which].key, "utf8"), serverName: "localhost" };
  };

  test("edge-1's certificate claiming host_name edge-2 is refused with status 2 and counted as an auth failure", async () => {
    const srv = await server({ ...serverTlsEnv({ clientCa: testCerts().ca }), TUNNEL_CLUSTERS: "edge=mtls:edge-1|edge-2", TUNNEL_ROUTES: "" });
    const info = initInfo({ host_name: "edge-2", credential_policy: "mtls", extra: hello("data", "thief") });
    let status: unknown = null;
    await rawAgent(srv.agentPort, info, { tls: clientTls("agent") }).then(
      (r) => (raws.push(r), (status = HandshakeStatus.SUCCESS)),
      (e: { status?: number }) => (status = e.status),
    );
    expect(status).toBe(HandshakeStatus.AUTH_FAILED);
    expect(srv.stats.handshakes.get(HandshakeStatus.AUTH_FAILED)).toBe(1);
    expect([...srv.registry.hosts()]).toHaveLength(0);
  });

  test("the same certificate under its own name joins, and so does edge-2's under edge-2", async () => {
    const srv = await server({ ...serverTlsEnv({ clientCa: testCerts().ca }), TUNNEL_CLUSTERS: "edge=mtls:edge-1|edge-2", TUNNEL_ROUTES: "" });
    for (const [which, name] of [["agent", "edge-1"], ["agent2", "edge-2"]] as const) {
      const info = initInfo({ host_name: name, credential_policy: "mtls", extra: hello("data", name) });
      raws.push(await rawAgent(srv.agentPort, info, { tls: clientTls(which) }));
    }
    await waitFor(() => [...srv.registry.hosts()].length === 2, "both agents registered");
    expect([...srv.registry.hosts()].map((h) => h.hostName).sort()).toEqual(["edge-1", "edge-2"]);
  });
});

describe("an mtls agent without TUNNEL_HOSTNAME", () => {
  test("registers under its certificate's CN and carries traffic", async () => {
    const c = testCerts();
    const srv = await server({ ...serverTlsEnv({ clientCa: c.ca }), TUNNEL_CLUSTERS: "edge=mtls:edge-1|edge-2", TUNNEL_ROUTES: "" });
    await agent(srv, { ...agentTlsEnv({ client: c.agent2 }), TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL_POLICY: "mtls", TUNNEL_HOSTNAME: "", TUNNEL_SERVICES: "echo=127.0.0.1:9" });
    expect([...srv.registry.hosts()].map((h) => h.hostName)).toContain("edge-2");
  });
});

describe("defect 2: an aside acts only for its own agent instance", () => {
  async function victimAndThief(srv: ServerHandle) {
    const victim = await raw(srv.agentPort, { host_name: "edge-1", extra: hello("data", "victim") });
    const victimAside = await raw(srv.agentPort, { host_name: "edge-1", extra: hello("aside", "victim") });
    await waitFor(() => [...srv.registry.hosts()].length === 1, "the victim registered");
    const host = [...srv.registry.hosts()][0]!;
    // The thief claims the victim's host name with another instance and knows (here: is told) the connection id.
    const thief = await raw(srv.agentPort, { host_name: "edge-1", extra: hello("aside", "thief") });
    return { victim, victimAside, host, thief };
  }

  test("DRAIN for another instance's connection is ignored (warned once), the victim keeps serving", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "" });
    const { victim, host, thief } = await victimAndThief(srv);
    for (let i = 0; i < 5; i++) await thief.send(controlFrame({ type: "drain", connection_ids: [host.connectionId] }));
    // A PING on the thief's connection is answered after its DRAINs were handled (frames are processed in order).
    const pongs = () => thief.received.reduce((n, c) => n + (c[0] === 0x07 ? 1 : 0), 0);
    await thief.send(frame(0x06, 0, new Uint8Array(8)));
    await waitFor(() => pongs() >= 1, "the thief's PING answered");
    expect(host.session.draining).toBe(false);
    expect(host.session.closed).toBe(false);
    expect(victim.isClosed()).toBe(false);
    expect(srv.registry.pick("edge")).toBe(host);
    const warned = logs.lines.filter((l) => l.level === "warn" && /not this agent instance/.test(l.msg));
    expect(warned).toHaveLength(1);
  });

  test("a WEIGHT from another instance does not change the victim's weight; the owner's does", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "" });
    const { thief, victimAside } = await victimAndThief(srv);
    await thief.send(controlFrame({ type: "weight", weight: 1 }));
    await thief.send(frame(0x06, 0, new Uint8Array(8)));
    await waitFor(() => thief.received.some((c) => c[0] === 0x07), "the thief's PING answered");
    expect(srv.registry.weightOf("edge", "edge-1")).toBe(10);
    await victimAside.send(controlFrame({ type: "weight", weight: 50 }));
    await waitFor(() => srv.registry.weightOf("edge", "edge-1") === 50, "the owner's weight applied");
  });

  test("connection ids carry at least 96 random bits: no two share anything past the server prefix", async () => {
    const srv = await server({ TUNNEL_CLUSTERS: "edge=none", TUNNEL_ROUTES: "" });
    for (let slot = 0; slot < 4; slot++) await raw(srv.agentPort, { host_name: "edge-1", extra: hello("data", "one", slot) });
    await waitFor(() => [...srv.registry.hosts()].length === 4, "four connections");
    const ids = [...srv.registry.hosts()].map((h) => h.connectionId);
    const tails = ids.map((id) => id.slice(id.indexOf("-") + 1));
    for (const t of tails) expect(t).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(new Set(tails.map((t) => t.slice(0, 4))).size).toBe(4);
  });
});
