/**
 * Hostile peers for security tests: idle connections that never send a byte, and a raw "agent" that completes a
 * real handshake and then writes whatever frames a test builds (floods, hand-made OPENs), optionally never reading.
 */
import type { Socket, TLSOptions } from "bun";
import { encodeHandshake, type ConnectionInitInfo } from "../../src/protocol/handshake.ts";

/** One idle connection's fate. */
export interface IdleResult {
  /** ms from connect to close (Infinity if the connect failed). */
  closedAfterMs: number;
  /** Bytes the server sent before closing (e.g. a SERVER_BUSY response). */
  received: number;
}

/**
 * Opens `n` connections to `port` that never send a byte (or only `firstBytes`, then nothing); each promise
 * resolves when the server closes it.
 */
export async function idleConnections(port: number, n: number, firstBytes?: Uint8Array): Promise<Promise<IdleResult>[]> {
  const results: Promise<IdleResult>[] = [];
  const opened: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    let settle!: (r: IdleResult) => void;
    results.push(new Promise<IdleResult>((resolve) => (settle = resolve)));
    const started = performance.now();
    let received = 0;
    opened.push(
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) {
            if (firstBytes) s.write(firstBytes);
          },
          data(_s, d) {
            received += d.byteLength;
          },
          close() {
            settle({ closedAfterMs: performance.now() - started, received });
          },
          connectError() {
            settle({ closedAfterMs: Infinity, received });
          },
        },
      }).catch(() => settle({ closedAfterMs: Infinity, received })),
    );
    // Keep the accept queue reasonable: a burst of 1,000 SYNs can overflow a small backlog.
    if (i % 100 === 99) await Promise.all(opened.splice(0));
  }
  await Promise.all(opened);
  return results;
}

/** A default Backchannel InitInfo body for raw agents. */
export function initInfo(overrides: Partial<ConnectionInitInfo> = {}): ConnectionInitInfo {
  return {
    cluster_name: "edge",
    weight: 10,
    host_name: "raw-agent",
    credential_policy: "none",
    credential: "",
    extra: { backchannel: { version: 1, role: "data", slot: 0, instance: "raw", window: 1 << 20, max_frame: 1 << 18 } },
    ...overrides,
  };
}

/** A raw agent connection after a successful handshake. */
export interface RawAgent {
  socket: Socket<undefined>;
  /** Bytes received after the handshake response (stream frames), unless paused. */
  received: Uint8Array[];
  /** Total bytes received after the response. */
  readonly receivedBytes: number;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Writes all of `bytes` (waiting for drain as needed); false once the socket is closed. */
  send(bytes: Uint8Array): Promise<boolean>;
}

/**
 * Connects to a server's agent port, sends InitInfo (`info`), waits for the response (which must be SUCCESS) and
 * returns the connection. With `read: false` the socket is paused right after the response: it never reads again.
 */
export function rawAgent(port: number, info: ConnectionInitInfo, opts: { read?: boolean; tls?: TLSOptions } = {}): Promise<RawAgent> {
  const chunks: Uint8Array[] = [];
  let handshakeBuf = new Uint8Array(0);
  let responded = false;
  let closed = false;
  let receivedBytes = 0;
  let markClosed!: () => void;
  const closedP = new Promise<void>((r) => (markClosed = r));
  let drainWaiter: (() => void) | null = null;
  return new Promise((resolve, reject) => {
    const hello = (s: Socket<undefined>): void => void s.write(encodeHandshake({ flag: 1, body: info }));
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      ...(opts.tls ? { tls: opts.tls } : {}),
      socket: {
        open(s) {
          if (!opts.tls) hello(s);
        },
        handshake(s, ok) {
          if (ok) hello(s);
          else s.end();
        },
        data(s, d) {
          if (responded) {
            receivedBytes += d.byteLength;
            chunks.push(new Uint8Array(d));
            return;
          }
          const joined = new Uint8Array(handshakeBuf.byteLength + d.byteLength);
          joined.set(handshakeBuf, 0);
          joined.set(d, handshakeBuf.byteLength);
          handshakeBuf = joined;
          if (handshakeBuf.byteLength < 8) return;
          const len = (handshakeBuf[6]! << 8) | handshakeBuf[7]!;
          if (handshakeBuf.byteLength < 8 + len) return;
          const body = JSON.parse(new TextDecoder().decode(handshakeBuf.subarray(8, 8 + len))) as { status: number };
          if (body.status !== 1) {
            reject(Object.assign(new Error(`raw agent refused with status ${body.status}`), { status: body.status }));
            s.end();
            return;
          }
          responded = true;
          const rest = handshakeBuf.subarray(8 + len);
          if (rest.byteLength > 0) {
            receivedBytes += rest.byteLength;
            chunks.push(rest);
          }
          if (opts.read === false) s.pause();
          resolve(agent(s));
        },
        drain() {
          const w = drainWaiter;
          drainWaiter = null;
          w?.();
        },
        close() {
          closed = true;
          markClosed();
          const w = drainWaiter;
          drainWaiter = null;
          w?.();
          if (!responded) reject(new Error("closed before the handshake response"));
        },
        connectError(_s, e) {
          reject(e);
        },
      },
    }).catch(reject);

    function agent(socket: Socket<undefined>): RawAgent {
      return {
        socket,
        received: chunks,
        get receivedBytes() {
          return receivedBytes;
        },
        closed: closedP,
        isClosed: () => closed,
        async send(bytes) {
          let off = 0;
          while (off < bytes.byteLength) {
            if (closed) return false;
            const n = socket.write(bytes.subarray(off));
            if (n < 0) return false;
            off += n;
            if (off < bytes.byteLength) await new Promise<void>((r) => (drainWaiter = r));
          }
          return !closed;
        },
      };
    }
  });
}

/** RSS of a process in bytes, from /proc (Linux). */
export async function rssOf(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!m) throw new Error("no VmRSS");
  return Number(m[1]) * 1024;
}

/** A stream frame as parsed by {@link FrameReader}. */
export interface RawFrame {
  type: number;
  streamId: number;
  payload: Uint8Array;
}

/** Splits a byte stream into frames (SPEC.md §2: 10-byte header, then the payload). Test-only, trusts lengths. */
export class FrameReader {
  readonly frames: RawFrame[] = [];
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.buf.byteLength + chunk.byteLength);
    joined.set(this.buf, 0);
    joined.set(chunk, this.buf.byteLength);
    let o = 0;
    while (joined.byteLength - o >= 10) {
      const dv = new DataView(joined.buffer, joined.byteOffset + o);
      const len = dv.getUint32(6);
      if (joined.byteLength - o < 10 + len) break;
      this.frames.push({ type: joined[o]!, streamId: dv.getUint32(2), payload: joined.slice(o + 10, o + 10 + len) });
      o += 10 + len;
    }
    this.buf = joined.slice(o);
  }

  /** RST codes by stream id. */
  resets(): Map<number, number> {
    const m = new Map<number, number>();
    for (const f of this.frames) {
      if (f.type === 0x04) m.set(f.streamId, new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0));
    }
    return m;
  }

  ofType(type: number): RawFrame[] {
    return this.frames.filter((f) => f.type === type);
  }
}

/** A stream frame built by hand. */
export function frame(type: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(10 + payload.byteLength);
  const dv = new DataView(out.buffer);
  out[0] = type;
  dv.setUint32(2, streamId);
  dv.setUint32(6, payload.byteLength);
  out.set(payload, 10);
  return out;
}

/** An OPEN frame with the service name bytes as given (no validation: may hold ':' or anything else). */
export function openFrame(streamId: number, service: string | Uint8Array): Uint8Array {
  const name = typeof service === "string" ? new TextEncoder().encode(service) : service;
  const payload = new Uint8Array(1 + name.byteLength + 1 + 2 + 1 + 2);
  payload[0] = name.byteLength;
  payload.set(name, 1);
  // visitor address "" port 0, route address "" port 0
  return frame(0x01, streamId, payload);
}

/** A PING frame. */
export function pingFrame(opaque = 0): Uint8Array {
  const p = new Uint8Array(8);
  new DataView(p.buffer).setUint32(4, opaque);
  return frame(0x06, 0, p);
}

/** One agent connection as a fake server sees it. */
export interface FakeConn {
  role: string;
  reader: FrameReader;
  send(bytes: Uint8Array): void;
  closed: boolean;
  close(): void;
}

/** A fake Backchannel server: answers every InitInfo with SUCCESS, then lets the test speak stream frames. */
export interface FakeServer {
  port: number;
  conns: FakeConn[];
  /** The first data connection (waits for it). */
  data(): Promise<FakeConn>;
  stop(): void;
}

/** `onConnection` runs for each connection right after its handshake response (e.g. a rogue server's first frames). */
export function startFakeServer(opts: { onConnection?: (conn: FakeConn) => void } = {}): FakeServer {
  const conns: FakeConn[] = [];
  type St = { hs: Uint8Array; conn: FakeConn | null };
  const l = Bun.listen<St>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { hs: new Uint8Array(0), conn: null };
      },
      data(s, d) {
        const st = s.data;
        if (st.conn) {
          st.conn.reader.push(d);
          return;
        }
        const joined = new Uint8Array(st.hs.byteLength + d.byteLength);
        joined.set(st.hs, 0);
        joined.set(d, st.hs.byteLength);
        st.hs = joined;
        if (joined.byteLength < 8) return;
        const len = (joined[6]! << 8) | joined[7]!;
        if (joined.byteLength < 8 + len) return;
        const info = JSON.parse(new TextDecoder().decode(joined.subarray(8, 8 + len))) as ConnectionInitInfo;
        const role = String((info.extra as { backchannel?: { role?: string } } | null)?.backchannel?.role ?? "data");
        const conn: FakeConn = {
          role,
          reader: new FrameReader(),
          send: (bytes) => void s.write(bytes),
          closed: false,
          close: () => s.end(),
        };
        st.conn = conn;
        conns.push(conn);
        s.write(
          encodeHandshake({
            flag: 2,
            body: { status: 1, connection_id: `fake-${conns.length}`, backchannel: { version: 1, window: 1 << 20, max_frame: 1 << 18 } },
          }),
        );
        const rest = joined.subarray(8 + len);
        if (rest.byteLength > 0) conn.reader.push(rest);
        opts.onConnection?.(conn);
      },
      close(s) {
        if (s.data?.conn) s.data.conn.closed = true;
      },
    },
  });
  return {
    port: l.port,
    conns,
    async data() {
      const deadline = performance.now() + 5000;
      for (;;) {
        const c = conns.find((x) => x.role === "data" && !x.closed);
        if (c) return c;
        if (performance.now() > deadline) throw new Error("no data connection from the agent");
        await Bun.sleep(5);
      }
    },
    stop: () => l.stop(true),
  };
}

/** A visitor held open through a route: round trips on demand, to check it is undisturbed by an attack. */
export interface HeldVisitor {
  /** Sends `n` bytes and resolves true once the same bytes came back (echo target). */
  roundTrip(n: number): Promise<boolean>;
  isClosed(): boolean;
  close(): void;
}

export async function heldVisitor(port: number): Promise<HeldVisitor> {
  let got: Uint8Array[] = [];
  let gotBytes = 0;
  let closed = false;
  let waiter: (() => void) | null = null;
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        got.push(new Uint8Array(d));
        gotBytes += d.byteLength;
        waiter?.();
      },
      close() {
        closed = true;
        waiter?.();
      },
    },
  });
  let seq = 0;
  return {
    async roundTrip(n) {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seq) & 0xff;
      seq++;
      got = [];
      gotBytes = 0;
      let off = 0;
      while (off < n) {
        const w = s.write(bytes.subarray(off));
        if (w < 0) return false;
        off += w;
        if (off < n) await Bun.sleep(1);
      }
      const deadline = performance.now() + 5000;
      while (gotBytes < n && !closed && performance.now() < deadline) {
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 50);
        });
      }
      waiter = null;
      if (gotBytes !== n) return false;
      const all = new Uint8Array(n);
      let o = 0;
      for (const c of got) {
        all.set(c, o);
        o += c.byteLength;
      }
      return all.every((b, i) => b === bytes[i]);
    },
    isClosed: () => closed,
    close: () => s.end(),
  };
}
