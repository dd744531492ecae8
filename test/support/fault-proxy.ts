/**
 * A fault-injecting TCP proxy for tests: sits between agents and a server and can pass, delay, blackhole (stop
 * forwarding without FIN or RST) or cut (RST) connections. Backpressure is honoured in both directions.
 */
import type { Socket } from "bun";
import { flushQueue, writeOrQueue } from "./write-queue.ts";

/** What the proxy does with bytes of a connection. */
export type FaultMode = "pass" | "blackhole";

interface Side {
  sock: Socket<Side> | null;
  peer: Side | null;
  queue: Uint8Array[];
  ended: boolean;
  conn: ProxiedConnection;
}

/** One proxied connection (client side ↔ upstream side). */
export class ProxiedConnection {
  mode: FaultMode = "pass";
  delayMs = 0;
  readonly client: Side;
  readonly upstream: Side;
  closed = false;

  constructor() {
    this.client = { sock: null, peer: null, queue: [], ended: false, conn: this };
    this.upstream = { sock: null, peer: null, queue: [], ended: false, conn: this };
    this.client.peer = this.upstream;
    this.upstream.peer = this.client;
  }

  /** Stops forwarding in both directions; sockets stay open (no FIN, no RST). */
  blackhole(): void {
    this.mode = "blackhole";
    this.client.sock?.pause();
    this.upstream.sock?.pause();
  }

  /** Resets both sides. */
  cut(): void {
    this.closed = true;
    this.client.sock?.terminate();
    this.upstream.sock?.terminate();
  }
}

function forward(from: Side, chunk: Uint8Array): void {
  const to = from.peer as Side;
  if (from.conn.mode === "blackhole") return;
  const send = () => {
    if (to.sock === null) {
      to.queue.push(chunk);
      return;
    }
    if (!writeOrQueue(to.sock, to.queue, chunk)) from.sock?.pause();
  };
  if (from.conn.delayMs > 0) setTimeout(send, from.conn.delayMs);
  else send();
}

function flush(side: Side): void {
  const s = side.sock;
  if (s === null) return;
  if (!flushQueue(s, side.queue)) return;
  if (side.conn.mode === "pass") side.peer?.sock?.resume();
  if (side.peer?.ended) s.shutdown();
}

const handlers = {
  data(s: Socket<Side>, chunk: Uint8Array) {
    forward(s.data, chunk);
  },
  drain(s: Socket<Side>) {
    flush(s.data);
  },
  end(s: Socket<Side>) {
    const side = s.data;
    side.ended = true;
    if (side.conn.mode !== "pass") return;
    const to = side.peer as Side;
    if (to.queue.length === 0) to.sock?.shutdown();
  },
  close(s: Socket<Side>) {
    const side = s.data;
    side.sock = null;
    if (side.conn.mode === "pass" && !side.conn.closed) {
      side.conn.closed = true;
      side.peer?.sock?.end();
    }
  },
};

/** A running proxy. */
export interface FaultProxy {
  readonly port: number;
  /** Connections in accept order. */
  readonly connections: ProxiedConnection[];
  /** Where new connections go (may be changed, e.g. after a server restart). */
  upstreamPort: number;
  stop(): void;
}

/** Starts a proxy on 127.0.0.1:0 forwarding to 127.0.0.1:upstreamPort. */
export function startFaultProxy(upstreamPort: number): FaultProxy {
  const proxy: { -readonly [K in keyof FaultProxy]: FaultProxy[K] } = { port: 0, connections: [], upstreamPort, stop: () => l.stop(true) };
  const l = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      ...handlers,
      open(s) {
        const conn = new ProxiedConnection();
        proxy.connections.push(conn);
        s.data = conn.client;
        conn.client.sock = s;
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: proxy.upstreamPort,
          allowHalfOpen: true,
          data: conn.upstream,
          socket: {
            ...handlers,
            open(u) {
              conn.upstream.sock = u;
              flush(conn.upstream);
            },
            connectError() {
              conn.closed = true;
              conn.client.sock?.terminate();
            },
          },
        }).catch(() => {});
      },
    },
  });
  proxy.port = l.port;
  return proxy;
}
