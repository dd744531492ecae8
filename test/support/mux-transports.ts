/**
 * The connections a mux test suite runs over (as yamux runs its tests over several connection types): memory
 * (test/support/memory-socket.ts), TCP loopback and TLS loopback through src/transport/tcp.ts, port 0. Each yields
 * connected pairs of ends whose events go to whatever owner the test gives them (a Session, a raw peer).
 */
import { readFileSync } from "node:fs";
import type { TLSOptions } from "bun";
import type { FrameSocket } from "../../src/mux/frame-writer.ts";
import type { LocalSocket } from "../../src/mux/stream.ts";
import { listen, type Listener } from "../../src/transport/listener.ts";
import { connect, type NetSocket, type SocketOwner } from "../../src/transport/tcp.ts";
import { memoryPair, type MemoryOptions } from "./memory-socket.ts";
import { testCerts } from "./certs.ts";

/** What a test may do with one end of a connection: write, pause, half-close, reset. */
export type WireSocket = FrameSocket & LocalSocket;

/** One end of a connected pair. */
export interface Conn {
  readonly socket: WireSocket;
  /** Sends this end's events to `owner` from now on (events that came earlier are replayed to it first). */
  own(owner: SocketOwner): void;
}

/** A kind of connection. */
export interface Transport {
  readonly name: string;
  /** A connected pair: the server's end (the accepted one for TCP/TLS) and the agent's (the dialled one). */
  pair(): Promise<[server: Conn, agent: Conn]>;
  /** Stops the listener and resets what it accepted. */
  stop(): void;
}

/** A SocketOwner that holds events until the real owner is known, then forwards them. */
class Relay implements SocketOwner {
  private target: SocketOwner | null = null;
  private readonly held: ((o: SocketOwner) => void)[] = [];
  /** TLS listener side: the handshake outcome. */
  handshake: ((ok: boolean) => void) | null = null;

  own(owner: SocketOwner): void {
    this.target = owner;
    for (const event of this.held.splice(0)) event(owner);
  }
  private forward(event: (o: SocketOwner) => void): void {
    if (this.target !== null) event(this.target);
    else this.held.push(event);
  }
  onData(chunk: Uint8Array): void {
    this.forward((o) => o.onData(chunk));
  }
  onDrain(): void {
    this.forward((o) => o.onDrain());
  }
  onEnd(): void {
    this.forward((o) => o.onEnd());
  }
  onClose(error?: Error): void {
    this.forward((o) => o.onClose(error));
  }
  onHandshake(ok: boolean): void {
    this.handshake?.(ok);
  }
}

/** Memory pairs made with `opts` (each pair gets the next seed, so chunk boundaries differ between tests). */
export function memoryTransport(opts: MemoryOptions = {}): Transport {
  let seed = opts.seed ?? 1;
  return {
    name: "memory",
    async pair() {
      const [a, b] = memoryPair({ ...opts, seed: seed++ });
      return [
        { socket: a, own: (o) => a.setOwner(o) },
        { socket: b, own: (o) => b.setOwner(o) },
      ];
    },
    stop() {},
  };
}

/** TCP (or, with `tls`, TLS) loopback pairs through src/transport/tcp.ts: one listener on 127.0.0.1 port 0. */
function netTransport(name: string, tls: { server: TLSOptions; agent: TLSOptions } | null): Transport {
  let listener: Listener | null = null;
  /** Accepted (and, for TLS, handshaken) ends by the remote port, or the dialler waiting for its accept. */
  const accepted = new Map<number, Conn>();
  const waiting = new Map<number, (c: Conn) => void>();
  const sockets = new Set<NetSocket>();
  const arrived = (port: number, conn: Conn): void => {
    const w = waiting.get(port);
    if (w !== undefined) {
      waiting.delete(port);
      w(conn);
    } else accepted.set(port, conn);
  };
  const start = (): Listener =>
    listen({
      host: "127.0.0.1",
      port: 0,
      tls: tls?.server,
      accept(s) {
        sockets.add(s);
        const relay = new Relay();
        const conn: Conn = { socket: s, own: (o) => relay.own(o) };
        // Nothing may be written before a TLS handshake finished: the end is handed out only then.
        if (tls === null) arrived(s.remotePort, conn);
        else relay.handshake = (ok) => (ok ? arrived(s.remotePort, conn) : s.terminate());
        return relay;
      },
    });
  return {
    name,
    async pair() {
      listener ??= start();
      const relay = new Relay();
      const s = await connect({ host: "127.0.0.1", port: listener.port, tls: tls?.agent, timeoutMs: 5_000, owner: relay });
      sockets.add(s);
      const port = s.localPort;
      const server = accepted.get(port) ?? (await new Promise<Conn>((resolve) => waiting.set(port, resolve)));
      accepted.delete(port);
      return [server, { socket: s, own: (o) => relay.own(o) }];
    },
    stop() {
      listener?.stop(true);
      listener = null;
      for (const s of sockets) s.terminate();
      sockets.clear();
    },
  };
}

/** TCP loopback pairs. */
export function tcpTransport(): Transport {
  return netTransport("tcp", null);
}

/** TLS loopback pairs: the test CA's server certificate, verified by the dialler (test/support/certs.ts). */
export function tlsTransport(): Transport {
  const c = testCerts();
  const read = (path: string) => readFileSync(path, "utf8");
  return netTransport("tls", {
    server: { cert: read(c.server.cert), key: read(c.server.key) },
    agent: { ca: read(c.ca.cert), rejectUnauthorized: true },
  });
}
