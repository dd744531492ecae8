/** main.ts as a process: argv, exit codes, one error message for all bad variables, startup, signals, JSON logs. */
import { describe, expect, test } from "bun:test";
import pkg from "../package.json" with { type: "json" };
import { VARIABLES } from "../src/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SECRET = "main-test-secret-0123456789";
const SERVER = { TUNNEL_CLUSTERS: `edge=token:${SECRET}`, TUNNEL_TLS: "off", TUNNEL_LISTEN: "127.0.0.1:0" };
const AGENT = { TUNNEL_SERVERS: "127.0.0.1:7000", TUNNEL_CLUSTER: "edge", TUNNEL_SERVICES: "web=127.0.0.1:8080" };

/** Starts main.ts with only PATH and `env` in its environment (nothing inherited from the test run). */
function spawnMain(args: string[], env: Record<string, string>) {
  return Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function run(args: string[], env: Record<string, string> = {}) {
  const proc = spawnMain(args, env);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

/** Reads `stream` until `needle` appears (or the stream ends); returns the text read and the reader. */
async function readUntil(stream: ReadableStream<Uint8Array>, needle: string) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes(needle)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  const rest = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  };
  return { text, rest };
}

const jsonLines = (text: string) =>
  text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);

describe("arguments", () => {
  test("--version and -v print the package version", async () => {
    for (const flag of ["--version", "-v"]) {
      const r = await run([flag]);
      expect(r).toEqual({ stdout: `${pkg.version}\n`, stderr: "", code: 0 });
    }
  });

  test("--help lists every variable and no secret from the environment", async () => {
    const r = await run(["--help"], { TUNNEL_CREDENTIAL: SECRET });
    expect(r.code).toBe(0);
    for (const d of VARIABLES) expect(r.stdout).toContain(d.name);
    expect(r.stdout).not.toContain(SECRET);
    expect((await run(["-h"])).stdout).toBe(r.stdout);
  });

  test("an unknown argument exits 2 naming it", async () => {
    const r = await run(["--mode=server", "--verbose"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"--verbose"');
  });

  test("--mode=nonsense exits 2 naming the mode", async () => {
    const r = await run(["--mode=nonsense"], SERVER);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--mode: expected server or agent, got "nonsense"');
  });
});

describe("bad configuration exits 2 with a message naming the variable", () => {
  test.each([
    ["TUNNEL_CONNECTIONS=abc", ["--mode=agent"], { ...AGENT, TUNNEL_CONNECTIONS: "abc" }, "TUNNEL_CONNECTIONS"],
    ["TUNNEL_ROUTES=garbage", ["--mode=server"], { ...SERVER, TUNNEL_ROUTES: "garbage" }, "TUNNEL_ROUTES"],
    ["TUNNEL_TLS_PIN=garbage", ["--mode=agent"], { ...AGENT, TUNNEL_TLS_PIN: "sha256:garbage" }, "TUNNEL_TLS_PIN: entry 1"],
    ["sni= and host= on one address", ["--mode=server"],
      { ...SERVER, TUNNEL_ROUTES: "127.0.0.1:0=edge/a;sni=a.example,127.0.0.1:0=edge/b;host=b.example" },
      "TUNNEL_ROUTES: 127.0.0.1:0: sni= and host= routes cannot share a listen address"],
    ["a name twice on one address", ["--mode=server"],
      { ...SERVER, TUNNEL_ROUTES: "127.0.0.1:0=edge/a;host=a.example,127.0.0.1:0=edge/b;host=A.example" }, "repeats host=a.example"],
    ["a wildcard shadowing a name", ["--mode=server"],
      { ...SERVER, TUNNEL_ROUTES: "127.0.0.1:0=edge/a;sni=*.b.example,127.0.0.1:0=edge/b;sni=a.b.example" }, "which it covers"],
    ["two default routes", ["--mode=server"],
      { ...SERVER, TUNNEL_ROUTES: "127.0.0.1:0=edge/a;sni=a.example,127.0.0.1:0=edge/b,127.0.0.1:0=edge/c" }, "are both default routes"],
    ["server without TUNNEL_CLUSTERS", ["--mode=server"], { TUNNEL_TLS: "off" }, "TUNNEL_CLUSTERS"],
    ["agent without TUNNEL_CLUSTER", ["--mode", "agent"], { ...AGENT, TUNNEL_CLUSTER: "" }, "TUNNEL_CLUSTER:"],
    ["no mode at all", [], {}, "TUNNEL_MODE"],
  ] as const)("%s", async (_name, args, env, variable) => {
    const r = await run([...args], env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toStartWith("backchannel: invalid configuration");
    expect(r.stderr).toContain(variable);
  });

  test("several bad variables are all named in one message; secrets are not echoed", async () => {
    const r = await run(["--mode=agent"], {
      ...AGENT, TUNNEL_CONNECTIONS: "abc", TUNNEL_WEIGHT: "1000", TUNNEL_SERVICES: "web=h:0",
      TUNNEL_CREDENTIAL: "short-pw", TUNNEL_FOO: "1",
    });
    expect(r.code).toBe(2);
    expect(r.stderr.match(/invalid configuration/g)).toHaveLength(1);
    for (const n of ["TUNNEL_CONNECTIONS", "TUNNEL_WEIGHT", "TUNNEL_SERVICES", "TUNNEL_CREDENTIAL"]) {
      expect(r.stderr).toContain(`${n}:`);
    }
    expect(r.stderr).toContain("warning: unknown variable TUNNEL_FOO");
    expect(r.stderr).not.toContain("short-pw");
  });
});

describe("running", () => {
  test("server: JSON logs, redacted config, warnings, ready; SIGTERM closes gracefully with exit 0", async () => {
    const proc = spawnMain(["--mode=server"], { ...SERVER, TUNNEL_LOG_FORMAT: "json", TUNNEL_FOO: "1" });
    const stderr = new Response(proc.stderr).text();
    const out = await readUntil(proc.stdout, '"msg":"ready"');
    proc.kill("SIGTERM");
    const stdout = await out.rest();
    expect(await proc.exited).toBe(0);
    const errText = await stderr;
    const lines = [...jsonLines(stdout), ...jsonLines(errText)]; // every line is a JSON object
    const starting = lines.find((l) => l.msg === "starting");
    expect(starting?.version).toBe(pkg.version);
    expect((starting?.config as { clusters: { secret: string }[] }).clusters[0]?.secret).toBe("[redacted]");
    expect(stdout + errText).not.toContain(SECRET);
    const warns = jsonLines(errText).filter((l) => l.level === "warn").map((l) => String(l.msg));
    expect(warns).toContainEqual(expect.stringContaining("TUNNEL_FOO"));
    expect(warns).toContain("TLS is off: traffic between agent and server is plaintext");
    expect(lines.map((l) => l.msg)).toContain("stopped");
  });

  test("agent: SIGINT closes gracefully with exit 0", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const proc = spawnMain(["--mode=agent"], {
        ...AGENT, TUNNEL_SERVERS: `127.0.0.1:${blocker.port}`, TUNNEL_TLS: "off", TUNNEL_LOG_FORMAT: "json",
      });
      void new Response(proc.stderr).text();
      await readUntil(proc.stdout, '"msg":"ready"');
      proc.kill("SIGINT");
      expect(await proc.exited).toBe(0);
    } finally {
      blocker.stop(true);
    }
  });

  test("a startup failure logs the error with its code and exits 1", async () => {
    const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await run(["--mode=server"], { ...SERVER, TUNNEL_LISTEN: `127.0.0.1:${blocker.port}`, TUNNEL_LOG_FORMAT: "json" });
      expect(r.code).toBe(1);
      const failure = jsonLines(r.stderr).find((l) => l.msg === "startup failed");
      expect(failure?.level).toBe("error");
      expect(String(failure?.code)).toMatch(/^ERR_[A-Z_]+$/);
      expect(typeof failure?.message).toBe("string");
    } finally {
      blocker.stop(true);
    }
  });
});
