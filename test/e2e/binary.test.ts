/** The whole scenario with the compiled binary, both modes, configured only by environment. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnRole, startServerProcess, type RoleProcess } from "../../scripts/lib/roles.ts";
import { runVisitor, startEchoServer } from "../support/net.ts";

const dir = mkdtempSync(join(tmpdir(), "backchannel-bin-"));
const started: RoleProcess[] = [];
const echo = startEchoServer();
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  echo.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("compiled binary: pinned TLS without a PKI (no openssl), server and agent carry 20 visitors byte-exact", async () => {
  const bin = join(dir, "backchannel");
  const build = Bun.spawnSync(
    [process.execPath, "build", "--compile", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "src/main.ts", "--outfile", bin],
    { cwd: join(import.meta.dir, "../.."), stdout: "pipe", stderr: "pipe" },
  );
  expect(build.exitCode).toBe(0);
  const secret = "binary-test-secret-0123";
  const srv = await startServerProcess([bin, "--mode=server"], {
    PATH: join(dir, "no-such-dir"), // nothing to run: the identity is made in-process, no openssl command
    TUNNEL_TLS: "on",
    TUNNEL_STATE_DIR: join(dir, "state"),
    TUNNEL_LISTEN: "127.0.0.1:0",
    TUNNEL_CLUSTERS: `edge=token:${secret}`,
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
  });
  started.push(srv.role);
  expect(srv.tlsPin).toMatch(/^sha256:/); // the self-signed identity, made by the binary itself
  const agent = spawnRole([bin], {
    TUNNEL_MODE: "agent",
    TUNNEL_TLS: "on",
    TUNNEL_TLS_PIN: srv.tlsPin ?? "",
    TUNNEL_SERVERS: `127.0.0.1:${srv.agentPort}`,
    TUNNEL_CLUSTER: "edge",
    TUNNEL_CREDENTIAL: secret,
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
  });
  started.push(agent);
  await agent.waitForLog((l) => l.msg === "connected");
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => runVisitor({ port: srv.routePorts[0] as number, seed: 500 + i, sendBytes: 256 * 1024 })),
  );
  for (const r of results) expect(r.ok).toBe(true);
  expect(await agent.stop()).toBe(0);
  expect(await srv.role.stop()).toBe(0);
}, 60_000);
