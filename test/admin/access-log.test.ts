/** The server's access log: one info line per finished stream with its visitor, route, agent, bytes, duration and reason; off with TUNNEL_ACCESS_LOG=off. */
import { afterAll, afterEach, expect, test } from "bun:test";
import { configureLogging } from "../../src/log.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const echo = startEchoServer();
afterAll(() => {
  echo.stop();
  configureLogging({ level: "error", format: "json" }); // test/support/tunnel.ts's default
});
afterEach(stopAll);

type Line = Record<string, unknown>;
function capture(): Line[] {
  const lines: Line[] = [];
  configureLogging({ level: "info", format: "json", write: (line) => lines.push(JSON.parse(line) as Line) });
  return lines;
}
const accessLines = (lines: Line[]) => lines.filter((l) => l.tag === "access");

async function run(accessLog: "on" | "off"): Promise<{ lines: Line[]; port: number }> {
  const lines = capture();
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo,127.0.0.1:0=edge/nosuch",
    TUNNEL_ACCESS_LOG: accessLog,
  });
  await agent(srv, { TUNNEL_CLUSTER: "edge", TUNNEL_HOSTNAME: "edge-log", TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}` });
  const [echoPort, nosuchPort] = srv.routePorts as [number, number];
  expect((await runVisitor({ port: echoPort, seed: 1, sendBytes: 12_345 })).ok).toBe(true);
  await runVisitor({ port: nosuchPort, seed: 1, sendBytes: 10, expectBytes: 0 });
  await waitFor(() => srv.stats.streamsActive === 0, "streams to end");
  return { lines, port: echoPort };
}

test("one line per finished stream: visitor, cluster, service, host, bytes each way, duration, reason", async () => {
  const { lines } = await run("on");
  const access = accessLines(lines);
  expect(access).toHaveLength(2);
  const [ok, reset] = [access.find((l) => l.service === "echo"), access.find((l) => l.service === "nosuch")];
  expect(ok).toMatchObject({
    level: "info",
    msg: "stream closed",
    cluster: "edge",
    service: "echo",
    route: "edge/echo",
    host: "edge-log",
    bytesOut: 12_345, // visitor → agent
    bytesIn: 12_345, // agent → visitor
    reason: "fin",
  });
  expect(String(ok?.visitor)).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(String(ok?.connectionId)).toMatch(/^[0-9a-f]{6}-[0-9a-f]{24}$/);
  expect(typeof ok?.durationMs).toBe("number");
  expect(reset).toMatchObject({ cluster: "edge", service: "nosuch", reason: "UNKNOWN_SERVICE", bytesIn: 0 });
}, 20_000);

test("TUNNEL_ACCESS_LOG=off writes none (other info lines still do)", async () => {
  const { lines } = await run("off");
  expect(accessLines(lines)).toHaveLength(0);
  expect(lines.some((l) => l.msg === "agent connection joined")).toBe(true);
}, 20_000);
