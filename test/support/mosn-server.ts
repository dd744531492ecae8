/**
 * A MOSN tunnel server written from MOSN's documented behaviour (shared/reference/mosn-tunnel.md §1, §3), not from
 * our code: its tunnel listener decodes one frame the way MOSN's filter does (wait for more than 8 bytes and for
 * 8 + length, then the magic); an InitInfo is answered `{"status":1}` and the connection becomes an upstream host of
 * a frontend listener; a GracefulClose is recorded (MOSN removes the hosts and closes nothing); a connection that
 * sends nothing is an agent's aside connection, kept open. Each frontend visitor takes one idle host connection,
 * piped byte for byte, and that connection is closed when the visitor is done (a raw upstream carries one visitor).
 */
import type { Socket, TCPSocketListener } from "bun";
import { readMosnFrame } from "./mosn-agent.ts";
import { flushQueue, writeOrQueue } from "./write-queue.ts";

interface Conn {
  buf: Uint8Array;
  /** "new" until its first frame; "host" an upstream host; "aside" recorded nothing yet; "gone" after use. */
  kind: "new" | "host" | "visitor" | "done";
  queue: Uint8Array[];
  other: Socket<Conn> | null;
  ended: boolean;
}

/** One InitInfo as received: the 8 header bytes and the JSON text. */
export interface ReceivedInit {
  header: number[];
  json: string;
  remote: string;
}

/** The running fake. */
export interface MosnServer {
  readonly tunnelPort: number;
  readonly frontendPort: number;
  readonly inits: ReceivedInit[];
  readonly gracefulCloses: { body: { addresses: string[]; cluster_name: string }; remote: string; header: number[] }[];
  /** Remote `ip:port` of every host connection open now (idle or carrying a visitor). */
  hostAddresses(): string[];
  /** Host connections waiting for a visitor. */
  idleCount(): number;
  /** Closes one idle host connection from the server side (the agent should dial again). */
  closeOneIdle(): string | null;
  stop(): void;
}

const fresh = (): Conn => ({ buf: new Uint8Array(0), kind: "new", queue: [], other: null, ended: false });

/** Pipes data to the other socket with backpressure; FIN and close pass on. */
const pipe = {
  data(s: Socket<Conn>, chunk: Uint8Array) {
    const o = s.data.other;
    if (o !== null && !writeOrQueue(o, o.data.queue, chunk)) s.pause();
  },
  drain(s: Socket<Conn>) {
    if (!flushQueue(s, s.data.queue)) return;
    s.data.other?.resume();
    if (s.data.other?.data.ended) s.shutdown();
  },
  end(s: Socket<Conn>) {
    s.data.ended = true;
    const o = s.data.other;
    if (o !== null && o.data.queue.length === 0) o.shutdown();
  },
};

/** Starts both listeners on 127.0.0.1 port 0. */
export function startMosnServer(): MosnServer {
  const inits: ReceivedInit[] = [];
  const gracefulCloses: MosnServer["gracefulCloses"] = [];
  const hosts = new Set<Socket<Conn>>();
  const idle: Socket<Conn>[] = [];
  const addr = (s: Socket<Conn>) => `${s.remoteAddress}:${s.remotePort}`;

  const tunnel: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = fresh();
      },
      data(s, chunk) {
        if (s.data.kind !== "new") return pipe.data(s, chunk);
        const j = new Uint8Array(s.data.buf.length + chunk.length);
        j.set(s.data.buf);
        j.set(chunk, s.data.buf.length);
        s.data.buf = j;
        const frame = readMosnFrame(j);
        if (frame === null) return;
        const header = [...j.subarray(0, 8)];
        const json = new TextDecoder().decode(j.subarray(8, j.length - frame.rest.length));
        if (frame.flag === 3) {
          gracefulCloses.push({ body: frame.json as { addresses: string[]; cluster_name: string }, remote: addr(s), header });
          return;
        }
        inits.push({ header, json, remote: addr(s) });
        s.write(new Uint8Array([0x20, 0x88, 0x01, 0x02, 0x02, 0x00, 0x00, 0x0c, ...new TextEncoder().encode('{"status":1}')]));
        s.data.kind = "host";
        s.data.buf = frame.rest.slice(); // bytes behind the InitInfo: the first upstream bytes
        hosts.add(s);
        idle.push(s);
      },
      drain: pipe.drain,
      end(s) {
        if (s.data.kind === "visitor" || s.data.other !== null) return pipe.end(s);
        s.end();
      },
      close(s) {
        hosts.delete(s);
        const i = idle.indexOf(s);
        if (i >= 0) idle.splice(i, 1);
        s.data.other?.end();
      },
    },
  });

  const frontend: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(v) {
        v.data = { ...fresh(), kind: "visitor" };
        const host = idle.shift();
        if (host === undefined) return void v.end();
        v.data.other = host;
        host.data.other = v;
        if (host.data.buf.length > 0) writeOrQueue(v, v.data.queue, host.data.buf);
      },
      data: pipe.data,
      drain: pipe.drain,
      end: pipe.end,
      close(v) {
        v.data.other?.end(); // the host connection carried its visitor: closed
      },
    },
  });

  return {
    tunnelPort: tunnel.port,
    frontendPort: frontend.port,
    inits,
    gracefulCloses,
    hostAddresses: () => [...hosts].map(addr),
    idleCount: () => idle.length,
    closeOneIdle() {
      const s = idle.shift();
      if (s === undefined) return null;
      s.end();
      return addr(s);
    },
    stop() {
      frontend.stop(true);
      tunnel.stop(true);
    },
  };
}
