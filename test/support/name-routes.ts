/**
 * Peers for the routing-by-name tests: edge services that are real TLS servers (Bun.listen with tls, each with its
 * own certificate), a plain HTTP/1.1 keep-alive service, a recorder of raw bytes, raw loopback visitors, and the
 * real command-line clients (curl, openssl s_client) run asynchronously so the in-process server keeps serving.
 */
import type { Socket } from "bun";
import { makeLeaf, type CertFiles } from "../../scripts/lib/certs.ts";
import { testCerts } from "./certs.ts";

/** A running test service. */
export interface Service {
  port: number;
  stop(): void;
}

/** A server certificate for `names` (DNS SANs) from the test CA. */
export function leafFor(file: string, names: string[]): CertFiles {
  const c = testCerts();
  return makeLeaf(c.dir, file, c.ca, { cn: names[0] as string, san: names.map((n) => `DNS:${n}`), usage: "server" });
}

const tlsOf = (cert: CertFiles) => ({ cert: Bun.file(cert.cert), key: Bun.file(cert.key) });

/**
 * A TLS server answering each HTTP request head with `HTTP/1.1 200` and the body `body` (closing after it), or,
 * with `echo`, echoing every byte back (FIN answered with FIN).
 */
export function startTlsService(cert: CertFiles, mode: { body: string } | { echo: true }): Service {
  const l = Bun.listen<{ head: string }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: "echo" in mode,
    tls: tlsOf(cert),
    socket: {
      open(s) {
        s.data = { head: "" };
      },
      data(s, chunk) {
        if ("echo" in mode) return void writeAll(s, chunk);
        s.data.head += Buffer.from(chunk).toString("latin1");
        if (!s.data.head.includes("\r\n\r\n")) return;
        s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${mode.body.length}\r\nConnection: close\r\n\r\n${mode.body}`);
      },
      end(s) {
        s.shutdown();
      },
    },
  });
  return { port: l.port, stop: () => l.stop(true) };
}

/** Writes all of `chunk` (test sizes fit the socket buffer; a partial write would fail the byte-exact check). */
function writeAll(s: Socket<unknown>, chunk: Uint8Array): void {
  const n = s.write(chunk);
  if (n !== chunk.length) throw new Error(`short write ${n}/${chunk.length}`);
}

/** A plain HTTP/1.1 service (keep-alive) answering every request with `body` and the Host it saw. */
export function startHttpService(body: string): Service {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => new Response(`${body} ${req.headers.get("host") ?? "-"}`),
  });
  return { port: server.port as number, stop: () => void server.stop(true) };
}

/** A TCP service that records every byte of every connection, in order, and closes on the visitor's FIN. */
export function startRecorder(): Service & { connections: Uint8Array[][] } {
  const connections: Uint8Array[][] = [];
  const l = Bun.listen<{ chunks: Uint8Array[] }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { chunks: [] };
        connections.push(s.data.chunks);
      },
      data(s, chunk) {
        s.data.chunks.push(new Uint8Array(chunk));
      },
      end(s) {
        s.end();
      },
    },
  });
  return { port: l.port, connections, stop: () => l.stop(true) };
}

/** Joins chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

/** What a raw visitor got: every byte until the server closed, and whether it closed with an error. */
export interface RawResult {
  received: Uint8Array;
  error: string | null;
}

/**
 * A raw loopback visitor: sends `pieces` one per event-loop turn (each in its own write, TCP_NODELAY), then
 * half-closes if `fin`, and collects what comes back until the connection closes.
 */
export function rawVisitor(port: number, pieces: Uint8Array[], opts: { fin?: boolean } = {}): Promise<RawResult> {
  const got: Uint8Array[] = [];
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        async open(s) {
          s.setNoDelay(true);
          for (const p of pieces) {
            writeAll(s, p);
            await new Promise((r) => setImmediate(r));
          }
          if (opts.fin) s.shutdown();
        },
        data(_s, chunk) {
          got.push(new Uint8Array(chunk));
        },
        close(_s, err) {
          resolve({ received: concat(got), error: err ? String((err as Error & { code?: string }).code ?? err.message) : null });
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
}

/** Runs a command to completion without blocking the event loop (the server under test is in this process). */
export async function run(cmd: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(cmd, { stdin: stdin === undefined ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
  if (stdin !== undefined && p.stdin) {
    p.stdin.write(stdin);
    await p.stdin.end();
  }
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** True when `cmd --version` runs. */
export function have(cmd: string): boolean {
  try {
    return Bun.spawnSync([cmd, cmd === "openssl" ? "version" : "--version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
}
