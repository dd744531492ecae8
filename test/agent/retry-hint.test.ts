/**
 * The agent honours a server's SERVER_BUSY retry time (SPEC.md §1.2.1): it dials that server again after
 * `retry_after_ms` plus at most a tenth of jitter, and does not climb its reconnect backoff meanwhile (here a 60 s
 * base: a backoff delay would be seconds to a minute). The server is a listener written here that refuses every
 * connection with status 17.
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { encodeHandshake } from "../../src/protocol/handshake.ts";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { waitFor } from "../support/net.ts";
import { agentConfig } from "../support/tunnel.ts";

const RETRY_MS = 300;
let running: AgentHandle | null = null;
afterEach(async () => {
  await running?.close(false);
  running = null;
});

test("refused with retry_after_ms, a slot dials again after the retry time, not after its (60 s) backoff", async () => {
  const dials = new Map<string, number[]>(); // by role: when each InitInfo arrived
  const busy = encodeHandshake({ flag: 2, body: { status: 17, retry_after_ms: RETRY_MS } });
  const l = Bun.listen<{ got: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s: Socket<{ got: string }>) {
        s.data = { got: "" };
      },
      data(s, d) {
        s.data.got += new TextDecoder().decode(d);
        const role = /"role":"(\w+)"/.exec(s.data.got)?.[1];
        if (role === undefined) return;
        dials.set(role, [...(dials.get(role) ?? []), performance.now()]);
        s.write(busy);
        s.end();
      },
    },
  });
  try {
    running = await startAgent(agentConfig({
      TUNNEL_SERVERS: `127.0.0.1:${l.port}`,
      TUNNEL_CLUSTER: "edge",
      TUNNEL_SERVICES: "echo=127.0.0.1:9",
      TUNNEL_CONNECTIONS: "1",
      TUNNEL_RECONNECT_BASE_MS: "60000",
      TUNNEL_RECONNECT_MAX_MS: "60000",
    }));
    await waitFor(() => (dials.get("data")?.length ?? 0) >= 4, "four dials of the data slot", 10_000);
    const at = dials.get("data") as number[];
    for (let i = 1; i < 4; i++) {
      const gap = (at[i] as number) - (at[i - 1] as number);
      expect(gap).toBeGreaterThanOrEqual(RETRY_MS - 5); // timers may fire a hair early relative to performance.now
    }
    expect(running.stats.handshakes.get(17)).toBeGreaterThanOrEqual(3);
  } finally {
    l.stop(true);
  }
});
