/**
 * Secrets in no log line at any level, nor in --help, nor in errors (reliability.md S14). Every credential policy
 * (token, hmac-sha256, mtls, none) runs at trace level, with traffic and with failures (a wrong credential, a bad
 * client certificate, TLS refusals); every line is scanned for the secrets, their prefixes and encodings, and the
 * private keys' material. The processes' own startup lines (main.ts) and config errors are scanned too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { loadConfig, helpText } from "../../src/config.ts";
import { agent, agentConfig, server, stopAll } from "../support/tunnel.ts";
import { runVisitor, startEchoServer, waitFor, type TestServer } from "../support/net.ts";
import { agentTlsEnv, serverTlsEnv, testCerts } from "../support/certs.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";
import { sourceCommand, spawnRole, startServerProcess } from "../../scripts/lib/roles.ts";

const TOKEN = "tok-SECRET-a1b2c3d4e5f6g7h8";
const HMAC = "hmac-SECRET-z9y8x7w6v5u4t3s2";
const WRONG = "wrong-SECRET-q1w2e3r4t5y6u7i8"; // a mistyped secret is still a secret
const ADMIN = "admin-SECRET-m1n2b3v4c5x6z7l8";
let echo: TestServer;
let logs: Capture;

/** Every string that must never appear: the secrets, 12-character prefixes, base64 and hex forms, key material. */
async function needles(): Promise<string[]> {
  const out: string[] = [];
  for (const s of [TOKEN, HMAC, WRONG, ADMIN]) {
    out.push(s, s.slice(0, 12), Buffer.from(s).toString("base64").slice(0, 16), Buffer.from(s).toString("hex").slice(0, 24));
  }
  const c = testCerts();
  for (const key of [c.ca.key, c.server.key, c.agent.key, c.agent2.key, c.agentOther.key]) {
    const pem = await Bun.file(key).text();
    for (const line of pem.split("\n")) if (line.length >= 16 && !line.startsWith("-----")) out.push(line.slice(0, 32));
  }
  return out;
}

function scan(text: string, what: string, list: string[]): void {
  const found = list.filter((n) => text.includes(n));
  if (found.length > 0) throw new Error(`${what} contains secret material: ${found.map((f) => f.slice(0, 6) + "…").join(", ")}`);
}

beforeAll(() => {
  testCerts();
  echo = startEchoServer();
  logs = captureLogs("trace");
});
afterAll(async () => {
  await stopAll();
  echo.stop();
  logs.restore();
});

async function traffic(port: number): Promise<void> {
  const r = await runVisitor({ port, seed: 7, sendBytes: 100_000 });
  expect(r.ok).toBe(true);
}

describe("no secret in any log line at trace level", () => {
  test("token, hmac-sha256, mtls and none: joins, traffic, failures", async () => {
    const c = testCerts();
    const srv = await server({
      ...serverTlsEnv({ clientCa: c.ca }),
      TUNNEL_LOG_LEVEL: "trace",
      TUNNEL_CLUSTERS: `tok=token:${TOKEN},sig=hmac-sha256:${HMAC},cert=mtls:edge-1,open=none`,
      TUNNEL_ROUTES: "127.0.0.1:0=tok/echo,127.0.0.1:0=sig/echo,127.0.0.1:0=cert/echo,127.0.0.1:0=open/echo",
      TUNNEL_AUTH_FAILURE_LIMIT: "0",
    });
    const base = { ...agentTlsEnv({ client: c.agent }), TUNNEL_LOG_LEVEL: "trace", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`, TUNNEL_CONNECTIONS: "1" };
    await agent(srv, { ...base, TUNNEL_CLUSTER: "tok", TUNNEL_CREDENTIAL: TOKEN });
    await agent(srv, { ...base, TUNNEL_CLUSTER: "sig", TUNNEL_CREDENTIAL_POLICY: "hmac-sha256", TUNNEL_CREDENTIAL: HMAC });
    await agent(srv, { ...base, TUNNEL_CLUSTER: "cert", TUNNEL_CREDENTIAL_POLICY: "mtls" });
    await agent(srv, { ...base, TUNNEL_CLUSTER: "open", TUNNEL_CREDENTIAL_POLICY: "none" });
    for (const port of srv.routePorts) await traffic(port);

    // Failures: a wrong token, a wrong hmac secret, a certificate from another CA, a server the agent rejects.
    const failing: AgentHandle[] = [];
    const fail = async (env: Record<string, string>) => {
      failing.push(await startAgent(agentConfig({ ...base, TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`, TUNNEL_RECONNECT_MAX_MS: "100", ...env })));
    };
    const before = logs.lines.length;
    await fail({ TUNNEL_CLUSTER: "tok", TUNNEL_CREDENTIAL: WRONG, TUNNEL_HOSTNAME: "bad-1" });
    await fail({ TUNNEL_CLUSTER: "sig", TUNNEL_CREDENTIAL_POLICY: "hmac-sha256", TUNNEL_CREDENTIAL: WRONG, TUNNEL_HOSTNAME: "bad-2" });
    await fail({ ...agentTlsEnv({ client: c.agentOther }), TUNNEL_CLUSTER: "tok", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_HOSTNAME: "bad-3" });
    await fail({ ...agentTlsEnv({ ca: c.otherCa, client: c.agent }), TUNNEL_CLUSTER: "tok", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_HOSTNAME: "bad-4" });
    await waitFor(() => logs.find("handshake refused").length >= 6 && logs.find("TLS with the server failed").length >= 2, "failures logged");
    await Promise.all(failing.map((a) => a.close(false)));
    await stopAll();

    expect(logs.lines.length).toBeGreaterThan(before);
    expect(logs.lines.some((l) => l.level === "trace" || l.level === "debug")).toBe(true);
    scan(logs.raw.join("\n"), "the log", await needles());
  }, 30_000);

  test("processes at trace level: startup config, joins, shutdown (main.ts)", async () => {
    const c = testCerts();
    const srv = await startServerProcess(sourceCommand("server"), {
      ...serverTlsEnv(),
      TUNNEL_LOG_LEVEL: "trace",
      TUNNEL_LISTEN: "127.0.0.1:0",
      TUNNEL_CLUSTERS: `tok=token:${TOKEN},sig=hmac-sha256:${HMAC}`,
      TUNNEL_ROUTES: "127.0.0.1:0=tok/echo",
      TUNNEL_ADMIN_TOKEN: ADMIN,
    });
    const ag = spawnRole(sourceCommand("agent"), {
      ...agentTlsEnv({ client: c.agent }),
      TUNNEL_LOG_LEVEL: "trace",
      TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
      TUNNEL_CLUSTER: "tok",
      TUNNEL_CREDENTIAL: TOKEN,
      TUNNEL_ADMIN_TOKEN: ADMIN,
      TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    });
    try {
      await ag.waitForLog((l) => l.msg === "connected");
      await traffic(srv.routePorts[0] as number);
    } finally {
      await ag.stop();
      await srv.role.stop();
    }
    const text = [...srv.role.lines, ...ag.lines].map((l) => JSON.stringify(l)).join("\n");
    expect(text).toContain("[redacted]");
    scan(text, "the process logs", await needles());
  }, 30_000);
});

test("the scan finds a planted secret, a prefix or key material (positive control)", async () => {
  const list = await needles();
  expect(() => scan(`{"msg":"x","credential":"${TOKEN}"}`, "planted", list)).toThrow();
  expect(() => scan(`…${HMAC.slice(0, 12)}…`, "planted", list)).toThrow();
  const key = (await Bun.file(testCerts().agent.key).text()).split("\n")[1] ?? "";
  expect(() => scan(key, "planted", list)).toThrow();
});

describe("no secret in --help or in errors", () => {
  test("--help with secrets in the environment", async () => {
    scan(helpText(), "helpText()", await needles());
    const p = Bun.spawnSync([...sourceCommand("server"), "--help"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TUNNEL_CREDENTIAL: TOKEN, TUNNEL_CLUSTERS: `a=token:${TOKEN}`, TUNNEL_ADMIN_TOKEN: ADMIN },
    });
    expect(p.exitCode).toBe(0);
    scan(p.stdout.toString() + p.stderr.toString(), "--help", await needles());
  });

  test("config errors and warnings that involve secret variables", async () => {
    const list = await needles();
    const cases: [string, Record<string, string>][] = [
      ["server", { TUNNEL_CLUSTERS: `a=token:${TOKEN},b=bogus:${HMAC}`, TUNNEL_TLS: "off" }],
      ["server", { TUNNEL_CLUSTERS: `a=none:${TOKEN}`, TUNNEL_TLS: "off" }],
      ["server", { TUNNEL_CLUSTERS: `${TOKEN}`, TUNNEL_TLS: "off", TUNNEL_ADMIN_TOKEN: "short" }],
      ["server", { TUNNEL_CLUSTERS: `a=token:${TOKEN}`, TUNNEL_ADMIN_TOKEN: ADMIN, TUNNEL_TLS: "maybe" }],
      ["agent", { TUNNEL_CREDENTIAL: TOKEN, TUNNEL_CREDENTIAL_POLICY: "mtls", TUNNEL_SERVERS: "x:1", TUNNEL_CLUSTER: "a", TUNNEL_SERVICES: "a=b:1" }],
      ["agent", { TUNNEL_CREDENTIAL: TOKEN, TUNNEL_CREDENTIAL_POLICY: "none", TUNNEL_TLS: "off", TUNNEL_SERVERS: "x:1", TUNNEL_CLUSTER: "a", TUNNEL_SERVICES: "a=b:1" }],
      ["agent", { TUNNEL_CREDENTIAL: `${TOKEN},x`, TUNNEL_CLUSTER: "bad name" }],
      ["agent", { TUNNEL_CREDENTIALS: TOKEN, TUNNEL_CLUSTER: "a" }],
    ];
    for (const [mode, env] of cases) {
      const r = loadConfig(env, mode);
      const text = [...(r.ok ? [] : r.errors), ...r.warnings].join("\n");
      expect(text.length).toBeGreaterThan(0);
      scan(text, `config messages for ${JSON.stringify(Object.keys(env))}`, list);
    }
    // A process with a bad config prints errors (exit 2) without the secret.
    const p = Bun.spawnSync(sourceCommand("server"), {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TUNNEL_CLUSTERS: `a=token:${TOKEN},b=nope:${HMAC}` },
    });
    expect(p.exitCode).toBe(2);
    scan(p.stdout.toString() + p.stderr.toString(), "the process's config errors", list);
  });
});
