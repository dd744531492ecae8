/**
 * Certificate reload: when the files of TUNNEL_TLS_CERT/KEY (server), TUNNEL_TLS_CLIENT_CA (server) or TUNNEL_TLS_CA
 * (agent) change, new connections use the new material without a restart, established connections stay; a bad new
 * file is logged at error with its variable and the old material kept. The server's files are rotated the way
 * cert-manager and Kubernetes do it (a `..data` symlink swapped atomically) while a stream is open.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import type { ServerHandle } from "../../src/server/server.ts";
import { certificatePin } from "../../src/transport/pem.ts";
import { agentConfig, server, stopAll } from "../support/tunnel.ts";
import { startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { PatternSource, PatternVerifier } from "../support/pattern.ts";
import { flushQueue, writeOrQueue } from "../support/write-queue.ts";
import { testCerts } from "../support/certs.ts";
import type { CertFiles } from "../../scripts/lib/certs.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";

const TOKEN = "tls-reload-test-token-0123456789";
const FAST = { TUNNEL_TLS_RELOAD_INTERVAL_MS: "20" };
let echo: TestServer;
let logs: Capture;
let dir: string;
const agents: AgentHandle[] = [];

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
  logs = captureLogs("debug");
  dir = mkdtempSync(join(tmpdir(), "backchannel-reload-"));
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close(false)));
  await stopAll();
  logs.clear();
});
afterAll(() => {
  echo.stop();
  logs.restore();
  rmSync(dir, { recursive: true, force: true });
});

const pinOf = (c: CertFiles): string => certificatePin(new X509Certificate(readFileSync(c.cert)));
let n = 0;

/**
 * A Kubernetes-style secret volume in a fresh directory: `tls.crt` and `tls.key` are links through `..data`, a
 * link to a timestamped directory; `swap` writes a new directory and renames a new `..data` link over the old one.
 */
function secretVolume(initial: CertFiles) {
  const root = join(dir, `volume-${++n}`);
  mkdirSync(root);
  let version = 0;
  const publish = (c: CertFiles): void => {
    const d = `..v${++version}`;
    mkdirSync(join(root, d));
    copyFileSync(c.cert, join(root, d, "tls.crt"));
    copyFileSync(c.key, join(root, d, "tls.key"));
    symlinkSync(d, join(root, "..data_tmp"));
    renameSync(join(root, "..data_tmp"), join(root, "..data"));
  };
  publish(initial);
  symlinkSync("..data/tls.crt", join(root, "tls.crt"));
  symlinkSync("..data/tls.key", join(root, "tls.key"));
  return { cert: join(root, "tls.crt"), key: join(root, "tls.key"), swap: publish };
}

function tlsServer(env: Record<string, string>): Promise<ServerHandle> {
  return server({ TUNNEL_TLS: "on", TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", ...FAST, ...env });
}

/** Starts an agent without waiting for it to connect. */
async function startRawAgent(srv: ServerHandle, env: Record<string, string>): Promise<AgentHandle> {
  const a = await startAgent(agentConfig({
    TUNNEL_TLS: "on", TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN,
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...FAST, ...env,
  }));
  agents.push(a);
  return a;
}

const joined = (a: AgentHandle): boolean => a.slots.some((s) => s.state === "ready");

/** A visitor whose sending the test paces: `send(n)` then `echoed(total)`; `finish()` half-closes and waits for the end. */
async function pacedVisitor(port: number, seed: number) {
  const source = new PatternSource(seed);
  const verifier = new PatternVerifier(seed);
  const queue: Uint8Array[] = [];
  let sent = 0;
  let closed: { error: string | null } | null = null;
  let ending = false;
  const sock: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1", port, allowHalfOpen: true,
    socket: {
      data: (_s, d) => verifier.push(d),
      drain: (s) => {
        if (flushQueue(s, queue) && ending) s.shutdown();
      },
      close: (_s, err) => void (closed = { error: err ? String((err as Error & { code?: string }).code ?? err.message) : null }),
    },
  });
  return {
    send(bytes: number): void {
      for (let off = 0; off < bytes; off += 32_768) writeOrQueue(sock, queue, source.next(Math.min(32_768, bytes - off), true));
      sent += bytes;
    },
    echoed: () => verifier.received,
    async finish(): Promise<{ sent: number; received: number; ok: boolean; error: string | null }> {
      ending = true;
      if (queue.length === 0) sock.shutdown();
      await waitFor(() => closed !== null, "the visitor's stream to end", 10_000);
      return { sent, received: verifier.received, ok: verifier.ok(sent), error: closed?.error ?? null };
    },
  };
}

describe("server certificate rotation", () => {
  test("while a stream is open: it finishes byte-exact; the next agent connection sees the new certificate", async () => {
    const c = testCerts();
    const volume = secretVolume(c.server);
    const [oldPin, newPin] = [pinOf(c.server), pinOf(c.serverOther)];
    const srv = await tlsServer({ TUNNEL_TLS_CERT: volume.cert, TUNNEL_TLS_KEY: volume.key });
    const first = await startRawAgent(srv, { TUNNEL_TLS_PIN: oldPin });
    await waitFor(() => joined(first), "the agent pinned to the first certificate to join");
    const firstConnection = first.slots[0]?.connectionId;
    const early = await startRawAgent(srv, { TUNNEL_TLS_PIN: newPin }); // pinned to what the server will serve
    await waitFor(() => logs.find("TLS with the server failed").length >= 1, "the new pin to be refused before rotation");

    const visitor = await pacedVisitor(srv.routePorts[0] as number, 77);
    visitor.send(512 * 1024);
    await waitFor(() => visitor.echoed() === 512 * 1024, "the first half to come back");

    volume.swap(c.serverOther);
    await waitFor(() => logs.find("TLS certificate reloaded").length > 0, "the reload");
    expect(logs.find("TLS certificate reloaded")[0]?.pin).toBe(newPin);
    expect(joined(early)).toBe(false);

    visitor.send(512 * 1024);
    const result = await visitor.finish();
    expect(result).toEqual({ sent: 1024 * 1024, received: 1024 * 1024, ok: true, error: null });
    // The established connection was never dropped; the early agent gets in on its next dial.
    expect(first.slots[0]?.connectionId).toBe(firstConnection);
    expect(joined(first)).toBe(true);
    await early.ready(5_000);
    // And a new agent pinned to the old certificate is now refused, naming the new one.
    logs.clear();
    const late = await startRawAgent(srv, { TUNNEL_TLS_PIN: oldPin });
    await waitFor(() => logs.find("TLS with the server failed").length >= 1, "the old pin to be refused after rotation");
    expect(String(logs.find("TLS with the server failed")[0]?.reason)).toContain(`server certificate ${newPin} matches no TUNNEL_TLS_PIN`);
    expect(joined(late)).toBe(false);
  });

  test("a bad new file is logged at error with its variable; the old certificate stays in use", async () => {
    const c = testCerts();
    const files = { cert: join(dir, `bad-${++n}.pem`), key: join(dir, `bad-${n}-key.pem`) };
    copyFileSync(c.server.cert, files.cert);
    copyFileSync(c.server.key, files.key);
    const srv = await tlsServer({ TUNNEL_TLS_CERT: files.cert, TUNNEL_TLS_KEY: files.key });
    writeFileSync(files.cert, "not a certificate, SECRET-LOOKING\n");
    await waitFor(() => logs.find("TLS files changed but cannot be used: keeping the material in use").length > 0, "the refusal");
    const line = logs.find("TLS files changed but cannot be used: keeping the material in use")[0];
    expect(line?.level).toBe("error");
    expect(line?.code).toBe("ERR_TLS_CONFIG");
    expect(String(line?.reason)).toContain("TUNNEL_TLS_CERT");
    expect(logs.raw.join("\n")).not.toContain("SECRET-LOOKING");
    // One error per change, not one per check.
    const checks = logs.find("TLS files changed but cannot be used: keeping the material in use").length;
    const a = await startRawAgent(srv, { TUNNEL_TLS_PIN: pinOf(c.server) });
    await waitFor(() => joined(a), "an agent pinned to the old certificate to join");
    expect(logs.find("TLS files changed but cannot be used: keeping the material in use").length).toBe(checks);
    // The key of another certificate is refused the same way (TUNNEL_TLS_KEY named).
    copyFileSync(c.server.cert, files.cert);
    copyFileSync(c.agent.key, files.key);
    await waitFor(() => logs.find("TLS files changed but cannot be used: keeping the material in use").length > checks, "the second refusal");
    expect(String(logs.find("TLS files changed but cannot be used: keeping the material in use").at(-1)?.reason)).toContain("TUNNEL_TLS_KEY");
    expect(logs.find("TLS certificate reloaded")).toHaveLength(0);
  });

  test("a changed TUNNEL_TLS_CLIENT_CA applies to new agents", async () => {
    const c = testCerts();
    const clientCa = join(dir, `client-ca-${++n}.pem`);
    copyFileSync(c.ca.cert, clientCa);
    const srv = await tlsServer({ TUNNEL_TLS_CERT: c.server.cert, TUNNEL_TLS_KEY: c.server.key, TUNNEL_TLS_CLIENT_CA: clientCa });
    const a = await startRawAgent(srv, {
      TUNNEL_TLS_PIN: pinOf(c.server), TUNNEL_TLS_CERT: c.agentOther.cert, TUNNEL_TLS_KEY: c.agentOther.key,
    });
    await waitFor(() => logs.find("agent handshake refused").length >= 1, "the foreign client certificate to be refused");
    copyFileSync(c.otherCa.cert, clientCa);
    await waitFor(() => logs.find("TLS certificate reloaded").length > 0, "the reload");
    await a.ready(10_000);
  });
});

describe("agent CA reload", () => {
  test("a changed TUNNEL_TLS_CA is used by the next dial, without a restart", async () => {
    const c = testCerts();
    const ca = join(dir, `agent-ca-${++n}.pem`);
    copyFileSync(c.otherCa.cert, ca); // not the server's CA yet
    const srv = await tlsServer({ TUNNEL_TLS_CERT: c.server.cert, TUNNEL_TLS_KEY: c.server.key });
    const a = await startRawAgent(srv, { TUNNEL_TLS_CA: ca });
    await waitFor(() => logs.find("TLS with the server failed").length >= 1, "the server to be refused");
    expect(joined(a)).toBe(false);
    copyFileSync(c.ca.cert, ca);
    await waitFor(() => logs.find("TLS files changed: new connections use them, established ones keep theirs").length > 0, "the reload");
    await a.ready(10_000);
  });
});
