/**
 * A rogue "server" for agent security tests: it answers every InitInfo with SUCCESS and then speaks raw stream
 * frames, writing with backpressure (a flood of DATA is written as fast as the agent reads it, never buffered here
 * beyond one frame per call). Frames from the agent are parsed and handed to `onFrame` as they arrive.
 */
import type { Socket } from "bun";
import { encodeHandshake, type ConnectionInitInfo } from "../../src/protocol/handshake.ts";
import { flushQueue, writeOrQueue } from "./write-queue.ts";

/** A frame from the agent. */
export interface AgentFrame {
  type: number;
  streamId: number;
  payload: Uint8Array;
}

/** One agent connection as the rogue server sees it. */
export interface RogueConn {
  readonly role: string;
  /** The per-stream window the agent announced in its hello. */
  readonly window: number;
  /** Called with every frame from the agent (set by the test). */
  onFrame: (f: AgentFrame) => void;
  /** Called when everything written so far went out (set by the test). */
  onDrain: () => void;
  /** Writes `bytes` (queued if the socket is full). Returns true if nothing is queued afterwards. */
  send(bytes: Uint8Array): boolean;
  /** True while written bytes wait for the socket. */
  readonly backedUp: boolean;
  readonly closed: boolean;
  close(): void;
}

/** The rogue server. */
export interface RogueServer {
  readonly port: number;
  readonly conns: RogueConn[];
  /** Waits for `n` data connections from the agent (5 s). */
  dataConns(n?: number): Promise<RogueConn[]>;
  stop(): void;
}

/** The server's own announced limits: 1 MiB window, 256 KiB frames. */
const SERVER_HELLO = { version: 1, window: 1 << 20, max_frame: 1 << 18 };

interface ConnState {
  hs: Uint8Array;
  conn: (RogueConn & { push(d: Uint8Array): void; drained(): void; gone(): void }) | null;
}

export function startRogueServer(): RogueServer {
  const conns: RogueConn[] = [];
  const l = Bun.listen<ConnState>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { hs: new Uint8Array(0), conn: null };
      },
      data(s, d) {
        const st = s.data;
        if (st.conn) return st.conn.push(d);
        st.hs = concat(st.hs, d);
        if (st.hs.byteLength < 8) return;
        const len = (st.hs[6]! << 8) | st.hs[7]!;
        if (st.hs.byteLength < 8 + len) return;
        const info = JSON.parse(new TextDecoder().decode(st.hs.subarray(8, 8 + len))) as ConnectionInitInfo;
        const hello = (info.extra as { backchannel: { role: string; window: number } }).backchannel;
        st.conn = rogueConn(s, hello.role, hello.window);
        conns.push(st.conn);
        s.write(encodeHandshake({ flag: 2, body: { status: 1, connection_id: `rogue-${conns.length}`, backchannel: SERVER_HELLO } }));
        const rest = st.hs.subarray(8 + len);
        if (rest.byteLength > 0) st.conn.push(rest);
      },
      drain(s) {
        s.data.conn?.drained();
      },
      close(s) {
        s.data.conn?.gone();
      },
    },
  });
  return {
    port: l.port,
    conns,
    async dataConns(n = 1) {
      const deadline = performance.now() + 5000;
      for (;;) {
        const data = conns.filter((c) => c.role === "data" && !c.closed);
        if (data.length >= n) return data.slice(0, n);
        if (performance.now() > deadline) throw new Error(`fewer than ${n} data connections from the agent`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stop: () => l.stop(true),
  };
}

function rogueConn(s: Socket<ConnState>, role: string, window: number) {
  const queue: Uint8Array[] = [];
  let buf: Uint8Array = new Uint8Array(0);
  let closed = false;
  const conn = {
    role,
    window,
    onFrame: (_f: AgentFrame) => {},
    onDrain: () => {},
    send(bytes: Uint8Array): boolean {
      if (closed) return false;
      return writeOrQueue(s, queue, bytes);
    },
    get backedUp() {
      return queue.length > 0;
    },
    get closed() {
      return closed;
    },
    close: () => s.end(),
    push(d: Uint8Array) {
      buf = concat(buf, d);
      let o = 0;
      while (buf.byteLength - o >= 10) {
        const dv = new DataView(buf.buffer, buf.byteOffset + o);
        const len = dv.getUint32(6);
        if (buf.byteLength - o < 10 + len) break;
        conn.onFrame({ type: buf[o]!, streamId: dv.getUint32(2), payload: buf.slice(o + 10, o + 10 + len) });
        o += 10 + len;
      }
      buf = buf.slice(o);
    },
    drained() {
      if (flushQueue(s, queue)) conn.onDrain();
    },
    gone() {
      closed = true;
    },
  };
  return conn;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return new Uint8Array(b);
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/** The uint32 at the start of a payload (RST code, WINDOW increment). */
export function u32(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}
