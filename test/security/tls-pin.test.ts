/**
 * Pinned TLS without a PKI: a server with TLS on and no TUNNEL_TLS_CERT makes a self-signed identity once in
 * TUNNEL_STATE_DIR (directory 0700, key 0600), reuses it, and logs its pin; an agent with TUNNEL_TLS_PIN accepts
 * exactly a server certificate with one of its pins (whatever its CA or name) and refuses any other with ERR_TLS,
 * retrying with backoff. Also TUNNEL_TLS_MIN_VERSION: handshakes below it are refused on both sides, with the reason.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate, constants, createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { startServer, type ServerHandle } from "../../src/server/server.ts";
import { loadConfig } from "../../src/config.ts";
import { isTunnelError } from "../../src/errors.ts";
import { certificatePin } from "../../src/transport/pem.ts";
import { agent, agentConfig, server, serverConfig, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { serverTlsEnv, testCerts } from "../support/certs.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";

const TOKEN = "tls-pin-test-token-0123456789";
let echo: TestServer;
let logs: Capture;
let dir: string;
const agents: AgentHandle[] = [];

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
  logs = captureLogs("debug");
  dir = mkdtempSync(join(tmpdir(), "backchannel-pin-"));
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

let dirs = 0;
/** A fresh state directory path (not created). */
const stateDir = (): string => join(dir, `state-${++dirs}`, "nested");

function pinnedServer(env: Record<string, string>): Promise<ServerHandle> {
  return server({ TUNNEL_TLS: "on", TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_ROUTES: "127.0.0.1:0=edge/echo", ...env });
}

/** Starts an agent without waiting for it to connect. */
async function startRawAgent(srv: ServerHandle, env: Record<string, string>): Promise<AgentHandle> {
  const a = await startAgent(agentConfig({
    TUNNEL_TLS: "on", TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN,
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1", ...env,
  }));
  agents.push(a);
  return a;
}

function pinAgentEnv(pins: string): Record<string, string> {
  return { TUNNEL_TLS: "on", TUNNEL_TLS_PIN: pins, TUNNEL_CLUSTER: "edge", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` };
}

/** The pin the server logged at start. */
function loggedPin(): string {
  const line = logs.find("server listening").at(-1);
  expect(typeof line?.tlsPin).toBe("string");
  return String(line?.tlsPin);
}

async function throughTunnel(routePort: number, bytes: number): Promise<void> {
  const results = await Promise.all([1, 2, 3].map((seed) => runVisitor({ port: routePort, seed, sendBytes: bytes })));
  for (const r of results) expect({ error: r.error, ok: r.ok, received: r.received }).toEqual({ error: null, ok: true, received: bytes });
}

describe("the server's self-signed identity", () => {
  test("made once in TUNNEL_STATE_DIR (0700, key 0600), reused across restarts with the same pin", async () => {
    const state = stateDir();
    const first = await pinnedServer({ TUNNEL_STATE_DIR: state });
    const pin = loggedPin();
    expect(pin).toMatch(/^sha256:[A-Za-z0-9+/]{43}=$/);
    expect(logs.find("made a self-signed TLS identity: agents trust it with TUNNEL_TLS_PIN")[0]?.pin).toBe(pin);
    expect(statSync(state).mode & 0o777).toBe(0o700);
    expect(statSync(join(state, "server-key.pem")).mode & 0o777).toBe(0o600);
    const certPem = readFileSync(join(state, "server-cert.pem"), "utf8");
    // The pin is the SHA-256 of the DER SubjectPublicKeyInfo, computed here independently.
    const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
    expect(pin).toBe(`sha256:${createHash("sha256").update(spki).digest("base64")}`);
    // … and as SPEC.md §6 tells operators to compute it with openssl.
    const certFile = join(state, "server-cert.pem");
    const sh = Bun.spawn(["sh", "-c", `openssl x509 -in '${certFile}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`], { stdout: "pipe" });
    expect(`sha256:${(await new Response(sh.stdout).text()).trim()}`).toBe(pin);
    await first.close();
    logs.clear();

    await pinnedServer({ TUNNEL_STATE_DIR: state });
    expect(loggedPin()).toBe(pin);
    expect(logs.find("TLS certificate")[0]?.pin).toBe(pin);
    expect(readFileSync(join(state, "server-cert.pem"), "utf8")).toBe(certPem);
    await stopAll();

    // A key left without its certificate (a start interrupted between the two writes) keeps the pin.
    unlinkSync(join(state, "server-cert.pem"));
    logs.clear();
    await pinnedServer({ TUNNEL_STATE_DIR: state });
    expect(loggedPin()).toBe(pin);
  });

  test("servers starting at once on one fresh directory end up with one identity (one pin)", async () => {
    const state = stateDir();
    const src = join(import.meta.dir, "../../src/transport");
    const script = `import { X509Certificate } from "node:crypto";
      import { loadOrCreateIdentity } from "${src}/identity.ts";
      import { certificatePin } from "${src}/pem.ts";
      const id = await loadOrCreateIdentity(${JSON.stringify(state)});
      console.log(certificatePin(new X509Certificate(id.cert)));`;
    const procs = [1, 2, 3, 4].map(() => Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" }));
    const pins = await Promise.all(procs.map(async (p) => (await new Response(p.stdout).text()).trim()));
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    expect(new Set(pins).size).toBe(1);
    const onDisk = certificatePin(new X509Certificate(readFileSync(join(state, "server-cert.pem"))));
    expect(pins[0]).toBe(onDisk);
  });

  test("a certificate without its key stops the start with ERR_TLS_CONFIG naming TUNNEL_STATE_DIR", async () => {
    const state = stateDir();
    await pinnedServer({ TUNNEL_STATE_DIR: state });
    await stopAll();
    unlinkSync(join(state, "server-key.pem"));
    const e = await startServer(serverConfig({ TUNNEL_TLS: "on", TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_STATE_DIR: state })).then(
      () => null,
      (err: unknown) => err,
    );
    expect(isTunnelError(e, "ERR_TLS_CONFIG")).toBe(true);
    expect((e as Error).message).toContain("TUNNEL_STATE_DIR");
    expect(existsSync(join(state, "server-key.pem"))).toBe(false); // no new identity behind the operator's back
  });
});

describe("an agent with TUNNEL_TLS_PIN", () => {
  test("the right pin (base64, or hex with colons) carries traffic byte-exact", async () => {
    const srv = await pinnedServer({ TUNNEL_STATE_DIR: stateDir() });
    const pin = loggedPin();
    const hex = Buffer.from(pin.slice("sha256:".length), "base64").toString("hex").toUpperCase().replace(/(..)(?!$)/g, "$1:");
    await agent(srv, pinAgentEnv(`sha256:${"A".repeat(43)}=,sha256:${hex}`)); // an unrelated pin first: rotation lists
    await throughTunnel(srv.routePorts[0] as number, 300_000);
  });

  test("a wrong pin is refused with ERR_TLS and the reason, retried with backoff; the agent never joins", async () => {
    const srv = await pinnedServer({ TUNNEL_STATE_DIR: stateDir() });
    const wrong = `sha256:${createHash("sha256").update("another key").digest("base64")}`;
    const a = await startRawAgent(srv, { TUNNEL_TLS_PIN: wrong });
    await waitFor(() => logs.find("TLS with the server failed").length >= 3, "three refused dials", 10_000);
    const refused = logs.find("TLS with the server failed");
    expect(refused.every((l) => l.code === "ERR_TLS" && l.level === "error" && Number(l.retryInMs) >= 0)).toBe(true);
    expect(String(refused[0]?.reason)).toContain(`server certificate ${loggedPin()} matches no TUNNEL_TLS_PIN`);
    expect(a.slots.every((s) => s.state !== "ready")).toBe(true);
    expect([...srv.registry.hosts()]).toHaveLength(0);
    expect(logs.find("agent handshake refused").every((l) => l.code !== "ERR_AUTH")).toBe(true); // no credential sent
  });

  test("a pin replaces the CA: a CA-signed server is refused unless pinned, then accepted whatever its name", async () => {
    const c = testCerts();
    const srv = await pinnedServer(serverTlsEnv());
    const caPin = certificatePin(new X509Certificate(readFileSync(c.server.cert)));
    const other = certificatePin(new X509Certificate(readFileSync(c.serverOther.cert)));
    await startRawAgent(srv, { TUNNEL_TLS_PIN: other });
    await waitFor(() => logs.find("TLS with the server failed").length >= 1, "a refused dial");
    expect(logs.find("TLS with the server failed")[0]?.code).toBe("ERR_TLS");
    await agent(srv, { ...pinAgentEnv(caPin), TUNNEL_TLS_SERVER_NAME: "not-the-certificates-name.example" });
    await throughTunnel(srv.routePorts[0] as number, 100_000);
  });
});

describe("configuration", () => {
  const agentEnv = { TUNNEL_SERVERS: "127.0.0.1:1", TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "a=127.0.0.1:1" };
  test.each([
    ["no prefix", "AAAA"],
    ["another hash", `sha1:${"A".repeat(27)}=`],
    ["too short", `sha256:${"A".repeat(40)}`],
    ["hex too long", `sha256:${"ab".repeat(33)}`],
    ["one good, one bad", `sha256:${"A".repeat(43)}=,sha256:nope`],
  ])("a malformed TUNNEL_TLS_PIN is a config error naming it (%s)", (_name, value) => {
    const r = loadConfig({ ...agentEnv, TUNNEL_TLS_PIN: value }, "agent");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("ERR_CONFIG");
      expect(r.errors.join("\n")).toMatch(/^TUNNEL_TLS_PIN: entry \d/m);
    }
  });

  test("TUNNEL_TLS_PIN with TUNNEL_TLS_CA is refused; pins are stored canonical", () => {
    const both = loadConfig({ ...agentEnv, TUNNEL_TLS_PIN: `sha256:${"A".repeat(43)}=`, TUNNEL_TLS_CA: "/ca.pem" }, "agent");
    expect(both.ok).toBe(false);
    if (!both.ok) expect(both.errors.join("\n")).toContain("TUNNEL_TLS_PIN and TUNNEL_TLS_CA");
    const hex = "00".repeat(31) + "ff";
    const r = loadConfig({ ...agentEnv, TUNNEL_TLS_PIN: ` SHA256:${hex} , sha256:${Buffer.from(hex, "hex").toString("base64url")}` }, "agent");
    expect(r.ok && r.config.mode === "agent" ? r.config.tlsPins : null).toEqual([`sha256:${Buffer.from(hex, "hex").toString("base64")}`]);
  });

  test("a server with TLS on needs no certificate; TUNNEL_TLS_CERT without TUNNEL_TLS_KEY is refused", () => {
    expect(loadConfig({ TUNNEL_CLUSTERS: `edge=token:${TOKEN}` }, "server").ok).toBe(true);
    const r = loadConfig({ TUNNEL_CLUSTERS: `edge=token:${TOKEN}`, TUNNEL_TLS_CERT: "/c.pem" }, "server");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join("\n")).toContain("TUNNEL_TLS_CERT and TUNNEL_TLS_KEY go together");
  });
});

describe("TUNNEL_TLS_MIN_VERSION", () => {
  test("a 1.3-only server refuses a client limited to TLS 1.2 and logs the reason", async () => {
    const srv = await pinnedServer({ TUNNEL_STATE_DIR: stateDir(), TUNNEL_TLS_MIN_VERSION: "1.3" });
    const outcome = await new Promise<string>((resolve) => {
      void Bun.connect({
        hostname: "127.0.0.1", port: srv.agentPort,
        tls: { rejectUnauthorized: false, secureOptions: constants.SSL_OP_NO_TLSv1_3 },
        socket: { data() {}, handshake: (_s, ok, err) => resolve(`${ok} ${err?.message}`), close: () => resolve("closed") },
      }).catch((e: Error) => resolve(`rejected ${e.message}`));
    });
    expect(outcome).toStartWith("false");
    await waitFor(() => logs.find("agent handshake refused").length > 0, "the server's log of the refusal");
    const line = logs.find("agent handshake refused")[0];
    expect(line?.code).toBe("ERR_TLS");
    expect(String(line?.reason)).toContain("UNSUPPORTED_PROTOCOL");
  });

  test("an agent with 1.3 refuses a server limited to TLS 1.2, logged as ERR_TLS with the reason", async () => {
    const state = stateDir();
    const srv = await pinnedServer({ TUNNEL_STATE_DIR: state });
    const pin = loggedPin();
    const pem = { cert: readFileSync(join(state, "server-cert.pem"), "utf8"), key: readFileSync(join(state, "server-key.pem"), "utf8") };
    const old = Bun.listen({ hostname: "127.0.0.1", port: 0, tls: { ...pem, secureOptions: constants.SSL_OP_NO_TLSv1_3 }, socket: { data() {} } });
    try {
      await startRawAgent({ ...srv, agentPort: old.port } as ServerHandle, { TUNNEL_TLS_PIN: pin, TUNNEL_TLS_MIN_VERSION: "1.3" });
      await waitFor(() => logs.find("TLS with the server failed").length >= 1, "a refused dial");
      const line = logs.find("TLS with the server failed")[0];
      expect(line?.code).toBe("ERR_TLS");
      expect(String(line?.reason)).toContain("PROTOCOL_VERSION");
      // The same agent settings against the real (1.2 and 1.3) server join.
      await agent(srv, { ...pinAgentEnv(pin), TUNNEL_TLS_MIN_VERSION: "1.3" });
    } finally {
      old.stop(true);
    }
  });
});
