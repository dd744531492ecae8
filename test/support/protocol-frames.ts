/**
 * Frame-test support: a normalised event model, a recording FrameHandler, and a naive DataView-based oracle
 * (encoder + whole-buffer decoder written independently of src/protocol) to check the real codec against.
 */
import type { FrameHandler, OpenPayload } from "../../src/protocol/frames.ts";
import { FrameDecoder } from "../../src/protocol/frame-decoder.ts";
import type { ErrorCode } from "../../src/errors.ts";
import { Prng, concat } from "./protocol-prng.ts";

/** One decoded frame. Consecutive non-empty DATA on the same stream is merged (see {@link normalize}). */
export type Ev =
  | { t: "data"; id: number; bytes: Uint8Array }
  | { t: "open"; id: number; open: OpenPayload }
  | { t: "ack"; id: number }
  | { t: "fin"; id: number }
  | { t: "rst"; id: number; code: number }
  | { t: "window"; id: number; inc: number }
  | { t: "ping"; opaque: Uint8Array }
  | { t: "pong"; opaque: Uint8Array }
  | { t: "goaway"; last: number; code: number }
  | { t: "control"; bytes: Uint8Array };

/** Appends `ev` to `log`, merging a non-empty DATA part into a preceding non-empty DATA of the same stream. */
export function appendEvent(log: Ev[], ev: Ev): void {
  const prev = log[log.length - 1];
  if (ev.t === "data" && ev.bytes.length > 0 && prev?.t === "data" && prev.id === ev.id && prev.bytes.length > 0) {
    prev.bytes = concat([prev.bytes, ev.bytes]);
    return;
  }
  log.push(ev);
}

/** The normal form of an event list (merges DATA parts the way {@link appendEvent} does). */
export function normalize(evs: readonly Ev[]): Ev[] {
  const out: Ev[] = [];
  for (const e of evs) appendEvent(out, e.t === "data" ? { ...e, bytes: e.bytes.slice() } : e);
  return out;
}

/** A FrameHandler that records a normalised, copied event log (and counts handleData calls). */
export class Recorder implements FrameHandler {
  readonly log: Ev[] = [];
  dataCalls = 0;
  handleData(id: number, payload: Uint8Array): void {
    this.dataCalls++;
    appendEvent(this.log, { t: "data", id, bytes: payload.slice() });
  }
  handleOpen(id: number, open: OpenPayload): void {
    this.log.push({ t: "open", id, open: { ...open } });
  }
  handleAck(id: number): void {
    this.log.push({ t: "ack", id });
  }
  handleFin(id: number): void {
    this.log.push({ t: "fin", id });
  }
  handleRst(id: number, code: number): void {
    this.log.push({ t: "rst", id, code });
  }
  handleWindow(id: number, inc: number): void {
    this.log.push({ t: "window", id, inc });
  }
  handlePing(opaque: Uint8Array): void {
    this.log.push({ t: "ping", opaque: opaque.slice() });
  }
  handlePong(opaque: Uint8Array): void {
    this.log.push({ t: "pong", opaque: opaque.slice() });
  }
  handleGoAway(last: number, code: number): void {
    this.log.push({ t: "goaway", last, code });
  }
  handleControl(payload: Uint8Array): void {
    this.log.push({ t: "control", bytes: payload.slice() });
  }
}

/** Result of feeding chunks to a fresh FrameDecoder. */
export interface FeedResult {
  log: Ev[];
  error: ErrorCode | null;
  maxBuffered: number;
  dataCalls: number;
}

/** Feeds `chunks` to a new FrameDecoder until an error; records events, the error code and peak bufferedBytes. */
export function feedFrames(chunks: readonly Uint8Array[], maxFrameBytes?: number): FeedResult {
  const rec = new Recorder();
  const dec = new FrameDecoder(rec, maxFrameBytes === undefined ? undefined : { maxFrameBytes });
  let maxBuffered = 0;
  let error: ErrorCode | null = null;
  for (const c of chunks) {
    const err = dec.push(c);
    maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
    if (err !== null) {
      error = err.code;
      break;
    }
  }
  return { log: rec.log, error, maxBuffered, dataCalls: rec.dataCalls };
}

const TYPE = { data: 0, open: 1, ack: 2, fin: 3, rst: 4, window: 5, ping: 6, pong: 7, goaway: 8, control: 9 } as const;

function openBytes(o: OpenPayload): Uint8Array {
  const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  const port = (p: number) => Uint8Array.of(p >> 8, p & 255);
  const [s, v, r] = [enc(o.service), enc(o.visitorAddress), enc(o.routeAddress)];
  return concat([Uint8Array.of(s.length), s, Uint8Array.of(v.length), v, port(o.visitorPort), Uint8Array.of(r.length), r, port(o.routePort)]);
}

/** Oracle encoder: one frame per event, a fresh buffer each, DataView for the integers. */
export function oracleEncode(evs: readonly Ev[]): Uint8Array<ArrayBuffer> {
  return concat(
    evs.map((e) => {
      let id = 0;
      let payload: Uint8Array = new Uint8Array(0);
      const u32s = (...xs: number[]) => {
        const b = new Uint8Array(4 * xs.length);
        xs.forEach((x, i) => new DataView(b.buffer).setUint32(4 * i, x));
        return b;
      };
      if ("id" in e) id = e.id;
      if (e.t === "data" || e.t === "control") payload = e.bytes;
      else if (e.t === "open") payload = openBytes(e.open);
      else if (e.t === "rst") payload = u32s(e.code);
      else if (e.t === "window") payload = u32s(e.inc);
      else if (e.t === "ping" || e.t === "pong") payload = e.opaque;
      else if (e.t === "goaway") payload = u32s(e.last, e.code);
      const frame = new Uint8Array(10 + payload.length);
      const dv = new DataView(frame.buffer);
      dv.setUint8(0, TYPE[e.t]);
      dv.setUint32(2, id);
      dv.setUint32(6, payload.length);
      frame.set(payload, 10);
      return frame;
    }),
  );
}

/** Random valid events: every type, DATA 0..maxData and CONTROL 2..maxData+2 bytes, ids across the range. */
export function randomEvents(rng: Prng, n: number, maxData = 300): Ev[] {
  const ids = [1, 2, 3, 7, 2 ** 31 - 1, 0x1000000];
  const id = () => (rng.int(4) === 0 ? rng.range(1, 2 ** 31 - 1) : rng.pick(ids));
  const text = (alphabet: string, max: number) => {
    let s = "";
    for (let i = rng.int(max + 1); i > 0; i--) s += alphabet[rng.int(alphabet.length)];
    return s;
  };
  const evs: Ev[] = [];
  for (let i = 0; i < n; i++) {
    switch (rng.int(11)) {
      case 0:
        evs.push({
          t: "open",
          id: id(),
          open: {
            service: "s" + text("abcXYZ019._-", 254),
            visitorAddress: text("0123456789abcdef:.", 45),
            visitorPort: rng.int(65536),
            routeAddress: text("0123456789.:", 45),
            routePort: rng.int(65536),
          },
        });
        break;
      case 1: evs.push({ t: "ack", id: id() }); break;
      case 2: evs.push({ t: "fin", id: id() }); break;
      case 3: evs.push({ t: "rst", id: id(), code: rng.int(2) ? rng.int(16) : rng.int(2 ** 32) }); break;
      case 4: evs.push({ t: "window", id: id(), inc: rng.range(1, 2 ** 31 - 1) }); break;
      case 5: evs.push({ t: "ping", opaque: rng.bytes(8) }); break;
      case 6: evs.push({ t: "pong", opaque: rng.bytes(8) }); break;
      case 7: evs.push({ t: "goaway", last: rng.int(2 ** 31), code: rng.int(2 ** 32) }); break;
      case 8: evs.push({ t: "control", bytes: rng.bytes(2 + rng.int(maxData + 1)) }); break;
      default: evs.push({ t: "data", id: id(), bytes: rng.bytes(rng.int(4) === 0 ? 0 : rng.int(maxData + 1)) });
    }
  }
  return evs;
}
