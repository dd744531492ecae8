/**
 * Loopback peers for end-to-end tests: an echo target with backpressure, a pattern visitor that sends and
 * verifies seeded bytes, a listener that must see no connection. Port 0 everywhere; no sleeps.
 */
import type { Socket, TCPSocketListener } from "bun";
import { PatternSource, PatternVerifier } from "./pattern.ts";
import { flushQueue, writeOrQueue } from "./write-queue.ts";

/** A listener for tests. */
export interface TestServer {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  stop(): void;
}

interface EchoState {
  queue: Uint8Array[];
  ended: boolean;
}

function flushEcho(s: Socket<EchoState>): void {
  const st = s.data;
  if (!flushQueue(s, st.queue)) return;
  s.resume();
  if (st.ended) s.shutdown();
}

/** An echo target: writes back everything, with backpressure; answers FIN with FIN once its queue drained. */
export function startEchoServer(): TestServer {
  const server: TestServer = { port: 0, accepted: 0, stop: () => l.stop(true) };
  const l: TCPSocketListener<EchoState> = Bun.listen<EchoState>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        server.accepted++;
        s.data = { queue: [], ended: false };
      },
      data(s, chunk) {
        if (!writeOrQueue(s, s.data.queue, chunk)) s.pause();
      },
      drain(s) {
        flushEcho(s);
      },
      end(s) {
        s.data.ended = true;
        if (s.data.queue.length === 0) s.shutdown();
      },
    },
  });
  server.port = l.port;
  return server;
}

/** A listener that counts connections and closes them (for "nothing was dialled" checks). */
export function startCountingServer(): TestServer {
  const server: TestServer = { port: 0, accepted: 0, stop: () => l.stop(true) };
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        server.accepted++;
        s.end();
      },
      data() {},
    },
  });
  server.port = l.port;
  return server;
}

/** Outcome of one visitor. */
export interface VisitorResult {
  sent: number;
  received: number;
  /** All received bytes matched the expected pattern (and count). */
  ok: boolean;
  /** The connection closed with an error (reset). */
  error: string | null;
  /** ms from connect to close. */
  durationMs: number;
}

/** Options for {@link runVisitor}. */
export interface VisitorOptions {
  port: number;
  host?: string;
  /** Seed of the bytes we send. */
  seed: number;
  sendBytes: number;
  /** Seed and count of the bytes we expect back (echo: same as sent). */
  expectSeed?: number;
  expectBytes?: number;
  /** Half-close after sending (default true). */
  halfClose?: boolean;
  chunkBytes?: number;
  /** Called with each received chunk (after verification). */
  onData?(chunk: Uint8Array): void;
}

/**
 * Connects, sends `sendBytes` of the seed's pattern with backpressure, half-closes, and verifies what comes back
 * until the server closes. Resolves when the socket is closed.
 */
export function runVisitor(opts: VisitorOptions): Promise<VisitorResult> {
  const source = new PatternSource(opts.seed);
  const verifier = new PatternVerifier(opts.expectSeed ?? opts.seed);
  const expectBytes = opts.expectBytes ?? opts.sendBytes;
  const chunk = opts.chunkBytes ?? 64 * 1024;
  const started = performance.now();
  let sent = 0;
  let pending: Uint8Array | null = null;
  let finished = false;
  return new Promise((resolve, reject) => {
    const pump = (s: Socket<undefined>) => {
      for (;;) {
        if (pending === null) {
          if (sent >= opts.sendBytes) {
            if (!finished) {
              finished = true;
              if (opts.halfClose !== false) s.shutdown();
            }
            return;
          }
          const n = Math.min(chunk, opts.sendBytes - sent);
          pending = source.next(n);
          sent += n;
        }
        const w = s.write(pending);
        if (w < 0) return;
        if (w < pending.byteLength) {
          pending = pending.subarray(w);
          return;
        }
        pending = null;
      }
    };
    Bun.connect({
      hostname: opts.host ?? "127.0.0.1",
      port: opts.port,
      allowHalfOpen: true,
      socket: {
        open: pump,
        drain: pump,
        data(_s, data) {
          verifier.push(data);
          opts.onData?.(data);
        },
        close(_s, err) {
          resolve({
            sent,
            received: verifier.received,
            ok: verifier.ok(expectBytes),
            error: err ? String((err as Error & { code?: string }).code ?? err.message) : null,
            durationMs: performance.now() - started,
          });
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
}

/** Polls `cond` every few ms until true or the deadline passes (then throws with `what`). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
