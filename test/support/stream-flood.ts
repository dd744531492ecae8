/**
 * A stream flood driven by a rogue server ({@link RogueConn}): OPEN `streams` streams to one service and send each
 * `bytesPerStream`, round robin in 64 KiB DATA frames, either within the window the agent granted (as an honest
 * server relaying fast visitors would) or ignoring it (a hostile server). Meanwhile one more stream to an echo service
 * carries a seeded pattern that must come back byte-exact. Everything the agent answers is recorded.
 */
import { PatternSource, PatternVerifier } from "./pattern.ts";
import { u32, type AgentFrame, type RogueConn } from "./rogue-server.ts";

const FRAME_PAYLOAD = 64 * 1024;
const T = { DATA: 0, OPEN: 1, ACK: 2, FIN: 3, RST: 4, WINDOW: 5 } as const;

/** Options of {@link flood}. */
export interface FloodOptions {
  streams: number;
  bytesPerStream: number;
  /** Stay within the agent's windows (honest) or send regardless (hostile). */
  respectWindow: boolean;
  /** Service the flood's streams name. */
  service: string;
  /** Echo service for the legitimate stream, and how many bytes it carries. */
  echoService: string;
  echoBytes: number;
}

/** What the agent answered, per stream id (flood streams are 1..streams; the echo stream is streams + 1). */
export interface FloodRecord {
  readonly resets: Map<number, number>;
  readonly acked: Set<number>;
  /** WINDOW increments the agent sent after its ACK, summed per stream. */
  readonly windowAfterAck: Map<number, number>;
  readonly fins: Set<number>;
  /** Bytes of flood DATA written to the connection. */
  sent: number;
  /** The echo stream's bytes came back exactly and it was finished both ways. */
  echoOk(): boolean;
  /** Every flood stream is over (reset, or finished both ways) and so is the echo stream. */
  done(): boolean;
  /** Stops sending. */
  stop(): void;
}

interface FloodStream {
  id: number;
  credit: number;
  remaining: number;
  queued: boolean;
  source: PatternSource | null;
}

/** Starts the flood on `conn`; it runs on the connection's events until done or stopped. */
export function flood(conn: RogueConn, o: FloodOptions): FloodRecord {
  const echoId = o.streams + 1;
  const streams = new Map<number, FloodStream>();
  const ready: FloodStream[] = [];
  let head = 0;
  let stopped = false;
  const verifier = new PatternVerifier(echoId);
  const rec: FloodRecord = {
    resets: new Map(),
    acked: new Set(),
    windowAfterAck: new Map(),
    fins: new Set(),
    sent: 0,
    echoOk: () => verifier.ok(o.echoBytes) && rec.fins.has(echoId) && !rec.resets.has(echoId),
    done: () => {
      for (let id = 1; id <= echoId; id++) if (!rec.resets.has(id) && !rec.fins.has(id)) return false;
      return true;
    },
    stop: () => void (stopped = true),
  };
  const canSend = (s: FloodStream) => s.remaining > 0 && (!o.respectWindow || s.credit > 0);
  const enqueue = (s: FloodStream) => {
    if (!s.queued && canSend(s) && !rec.resets.has(s.id)) {
      s.queued = true;
      ready.push(s);
    }
  };
  const pump = () => {
    while (!stopped && !conn.backedUp && head < ready.length) {
      const s = ready[head++] as FloodStream;
      s.queued = false;
      if (rec.resets.has(s.id) || !canSend(s)) continue;
      const n = Math.min(FRAME_PAYLOAD, s.remaining, o.respectWindow ? s.credit : Infinity);
      const payload = s.source !== null ? s.source.next(n) : new Uint8Array(n);
      s.remaining -= n;
      s.credit -= n;
      if (s.source === null) rec.sent += n;
      conn.send(s.remaining === 0 ? concat(frame(T.DATA, s.id, payload), frame(T.FIN, s.id)) : frame(T.DATA, s.id, payload));
      enqueue(s);
      if (head > 4096) {
        ready.splice(0, head);
        head = 0;
      }
    }
  };
  conn.onDrain = pump;
  conn.onFrame = (f: AgentFrame) => {
    const s = streams.get(f.streamId);
    if (f.type === T.RST) rec.resets.set(f.streamId, u32(f.payload));
    else if (f.type === T.ACK) rec.acked.add(f.streamId);
    else if (f.type === T.FIN) rec.fins.add(f.streamId);
    else if (f.type === T.DATA && f.streamId === echoId) verifier.push(f.payload);
    else if (f.type === T.WINDOW && s !== undefined) {
      s.credit += u32(f.payload);
      if (rec.acked.has(s.id)) rec.windowAfterAck.set(s.id, (rec.windowAfterAck.get(s.id) ?? 0) + u32(f.payload));
      enqueue(s);
      pump();
    }
  };
  const opens: Uint8Array[] = [];
  for (let id = 1; id <= echoId; id++) {
    const echo = id === echoId;
    const s: FloodStream = {
      id,
      credit: conn.window,
      remaining: echo ? o.echoBytes : o.bytesPerStream,
      queued: false,
      source: echo ? new PatternSource(echoId) : null,
    };
    streams.set(id, s);
    opens.push(openFrame(id, echo ? o.echoService : o.service));
  }
  conn.send(concat(...opens));
  for (const s of streams.values()) enqueue(s);
  pump();
  return rec;
}

function frame(type: number, streamId: number, payload?: Uint8Array): Uint8Array {
  const len = payload?.byteLength ?? 0;
  const out = new Uint8Array(10 + len);
  const dv = new DataView(out.buffer);
  out[0] = type;
  dv.setUint32(2, streamId);
  dv.setUint32(6, len);
  if (payload !== undefined) out.set(payload, 10);
  return out;
}

function openFrame(streamId: number, service: string): Uint8Array {
  const name = new TextEncoder().encode(service);
  const payload = new Uint8Array(1 + name.byteLength + 1 + 2 + 1 + 2);
  payload[0] = name.byteLength;
  payload.set(name, 1);
  return frame(T.OPEN, streamId, payload);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
