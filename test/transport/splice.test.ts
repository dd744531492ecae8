/**
 * transport/splice.ts over real loopback sockets: a listener whose every connection is spliced to a new connection
 * to an echo target (as raw connections are): byte-exact both ways with backpressure, bytes given first go first,
 * half-closes pass on, a reset on one side resets the other, and the result counts the bytes.
 */
import { afterAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { connect, type NetSocket } from "../../src/transport/tcp.ts";
import { listen } from "../../src/transport/listener.ts";
import { Splice, type SpliceResult } from "../../src/transport/splice.ts";
import { IGNORING_OWNER } from "../../src/transport/tcp.ts";
import { runVisitor, startEchoServer, waitFor } from "../support/net.ts";

const echo = startEchoServer();
const results: SpliceResult[] = [];
const first = new TextEncoder().encode("FIRST:");
let giveFirst = false;
const proxy = listen({
  host: "127.0.0.1",
  port: 0,
  accept(visitor: NetSocket) {
    const toA = giveFirst ? [first] : [];
    visitor.pause();
    void connect({ host: "127.0.0.1", port: echo.port, timeoutMs: 2_000, owner: IGNORING_OWNER }).then((target) => {
      const s = new Splice(visitor, target, (r) => results.push(r), { toA });
      visitor.data.owner = s.a;
      target.data.owner = s.b;
      visitor.resume();
    });
    return IGNORING_OWNER;
  },
});
afterAll(() => {
  proxy.stop(true);
  echo.stop();
});

test("4 MiB each way byte-exact through a splice, half-close passed on, bytes counted", async () => {
  const before = results.length;
  const r = await runVisitor({ port: proxy.port, seed: 4100, sendBytes: 4 * 1024 * 1024 });
  expect(r).toMatchObject({ ok: true, received: 4 * 1024 * 1024, error: null });
  await waitFor(() => results.length > before, "the splice to end");
  expect(results.at(-1)).toMatchObject({ aToB: 4 * 1024 * 1024, bToA: 4 * 1024 * 1024 });
  expect(results.at(-1)?.how).not.toBe("error");
});

test("bytes given first reach their socket before anything else", async () => {
  giveFirst = true;
  try {
    const got = await new Promise<string>((resolve) => {
      let text = "";
      void Bun.connect({
        hostname: "127.0.0.1",
        port: proxy.port,
        allowHalfOpen: true,
        socket: {
          open(s: Socket<undefined>) {
            s.write("echo");
            s.shutdown();
          },
          data: (_s, d) => void (text += new TextDecoder().decode(d)),
          close: () => resolve(text),
        },
      });
    });
    expect(got).toBe("FIRST:echo");
  } finally {
    giveFirst = false;
  }
});

test("a reset on one side ends the splice as an error and resets the other", async () => {
  const before = results.length;
  const accepted = echo.accepted;
  let echoed = false;
  const sock = await Bun.connect({ hostname: "127.0.0.1", port: proxy.port, socket: { data: () => void (echoed = true) } });
  sock.write("x");
  await waitFor(() => echo.accepted > accepted && echoed, "the splice to carry a byte");
  sock.terminate();
  await waitFor(() => results.length > before, "the splice to end");
  expect(results.at(-1)?.how).toBe("error");
});
