/** Logging: JSON lines, levels, streams, error serialisation, late configuration, the pretty sink. */
import { afterAll, describe, expect, test } from "bun:test";
import { configureLogging, logger } from "../src/log.ts";
import { TunnelError } from "../src/errors.ts";

interface Line { line: string; isErr: boolean }
function capture(level: Parameters<typeof configureLogging>[0]["level"], format: "json" | "pretty" = "json"): Line[] {
  const lines: Line[] = [];
  configureLogging({ level, format, write: (line, isErr) => lines.push({ line, isErr }) });
  return lines;
}
const parsed = (lines: Line[]) => lines.map((l) => JSON.parse(l.line) as Record<string, unknown>);

// Other test files share this process: leave logging as the default under bun test.
afterAll(() => configureLogging({ level: "warn", format: "pretty" }));

describe("json format", () => {
  test("one parseable object per line with time, level, tag, msg and the fields", () => {
    const lines = capture("info");
    logger("mux").info("stream opened", { streamId: 7, cluster: "edge" });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.line).not.toContain("\n");
    const [rec] = parsed(lines);
    expect(rec).toEqual({ time: expect.any(String), level: "info", tag: "mux", msg: "stream opened", streamId: 7, cluster: "edge" });
    expect(new Date(String(rec?.time)).toISOString()).toBe(String(rec?.time));
    expect(Object.keys(rec ?? {}).slice(0, 4)).toEqual(["time", "level", "tag", "msg"]);
  });

  test("warn and error go to stderr, the rest to stdout", () => {
    const lines = capture("trace");
    const log = logger("t");
    log.trace("a");
    log.debug("b");
    log.info("c");
    log.warn("d");
    log.error("e");
    expect(lines.map((l) => [JSON.parse(l.line).level, l.isErr])).toEqual([
      ["trace", false], ["debug", false], ["info", false], ["warn", true], ["error", true]]);
  });

  test.each([
    ["error", ["error"]],
    ["warn", ["warn", "error"]],
    ["info", ["info", "warn", "error"]],
    ["debug", ["debug", "info", "warn", "error"]],
    ["trace", ["trace", "debug", "info", "warn", "error"]],
  ] as const)("level %s writes %p", (level, want) => {
    const lines = capture(level);
    const log = logger("t");
    for (const l of ["trace", "debug", "info", "warn", "error"] as const) log[l](l);
    expect(parsed(lines).map((r) => r.msg)).toEqual([...want]);
    expect(log.enabled(level)).toBe(true);
    expect(log.enabled("trace")).toBe(level === "trace");
  });

  test("errors are serialised with message, code and stack", () => {
    const lines = capture("info");
    const cause = new Error("socket reset");
    logger("agent").error("handshake refused", { error: new TunnelError("ERR_AUTH", "bad credential", { cause }) });
    const err = parsed(lines)[0]?.error as Record<string, unknown>;
    expect(err.name).toBe("TunnelError");
    expect(err.message).toBe("bad credential");
    expect(err.code).toBe("ERR_AUTH");
    expect(String(err.stack)).toContain("TunnelError");
    expect((err.cause as Record<string, unknown>).message).toBe("socket reset");
  });

  test("odd fields still give one valid line: bigint, circular, forged core keys", () => {
    const lines = capture("info");
    const log = logger("t");
    log.info("big", { n: 2n ** 70n });
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    log.info("loop", { loop });
    log.info("forged", { level: "error", msg: "x", time: "y", tag: "z", ok: 1 });
    const [big, circ, forged] = parsed(lines);
    expect(big?.n).toBe("1180591620717411303424");
    expect(circ?.msg).toBe("loop");
    expect(String(circ?.logError)).toContain("not serialisable");
    expect(forged).toMatchObject({ level: "info", msg: "forged", tag: "t", ok: 1 });
  });

  test("repeated identical lines are all written (consola throttling is off)", () => {
    const lines = capture("info");
    for (let i = 0; i < 12; i++) logger("t").warn("same");
    expect(lines).toHaveLength(12);
  });
});

test("a logger created before configureLogging follows later configuration", () => {
  const early = logger("early");
  const first = capture("error");
  early.info("hidden");
  expect(first).toHaveLength(0);
  const second = capture("info");
  early.info("shown");
  expect(parsed(second)).toEqual([expect.objectContaining({ tag: "early", msg: "shown" })]);
});

test("pretty format goes through consola's reporter to the same sink", () => {
  const lines = capture("info", "pretty");
  logger("server").info("listening", { port: 7000 });
  logger("server").warn("careful");
  expect(lines).toHaveLength(2);
  expect(lines[0]?.line).toContain("listening");
  expect(lines[0]?.line).toContain("server");
  expect(lines[0]?.line).toContain("7000");
  expect(lines[0]?.isErr).toBe(false);
  expect(lines[1]?.isErr).toBe(true);
});

describe("default level before configureLogging", () => {
  const script = 'import { logger } from "./src/log.ts"; const l = logger("d"); l.info("info-line"); l.warn("warn-line");';
  async function run(nodeEnv: string) {
    const proc = Bun.spawn([process.execPath, "-e", script], {
      cwd: new URL("..", import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? "", NODE_ENV: nodeEnv },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    await proc.exited;
    return out + err;
  }
  test("warn under bun test (NODE_ENV=test)", async () => {
    const out = await run("test");
    expect(out).toContain("warn-line");
    expect(out).not.toContain("info-line");
  });
  test("info otherwise", async () => {
    const out = await run("production");
    expect(out).toContain("warn-line");
    expect(out).toContain("info-line");
  });
});
