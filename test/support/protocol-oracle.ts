/**
 * Naive whole-buffer frame decoder written straight from SPEC.md §2.3 with DataView, regexes and copies. Slow and
 * obviously-correct; the fuzz tests check the real FrameDecoder agrees with it on every input.
 */
import type { ErrorCode } from "../../src/errors.ts";
import type { OpenPayload } from "../../src/protocol/frames.ts";
import { type Ev, appendEvent } from "./protocol-frames.ts";

const FIXED: Record<number, number> = { 2: 0, 3: 0, 4: 4, 5: 4, 6: 8, 7: 8, 8: 8 };
const CONTROL_MIN = 2;
const CONTROL_MAX = 16384;

function latin1(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

function oracleOpen(p: Uint8Array): OpenPayload | null {
  let o = 0;
  const take = (n: number): Uint8Array | null => {
    if (o + n > p.length) return null;
    const out = p.slice(o, o + n);
    o += n;
    return out;
  };
  const sl = take(1);
  if (sl === null) return null;
  const svc = take(sl[0]!);
  if (svc === null || !/^[A-Za-z0-9._-]{1,255}$/.test(latin1(svc))) return null;
  const addr = (): [string, number] | null => {
    const l = take(1);
    if (l === null || l[0]! > 45) return null;
    const a = take(l[0]!);
    const port = take(2);
    if (a === null || port === null || !/^[\x21-\x7e]*$/.test(latin1(a))) return null;
    return [latin1(a), new DataView(port.buffer).getUint16(0)];
  };
  const v = addr();
  if (v === null) return null;
  const r = addr();
  if (r === null || o !== p.length) return null;
  return { service: latin1(svc), visitorAddress: v[0], visitorPort: v[1], routeAddress: r[0], routePort: r[1] };
}

/** Checks the header prefix `h` (1..10 bytes): the first failing field's code, or null. */
function oracleHeader(h: Uint8Array, maxFrame: number): ErrorCode | null {
  const dv = new DataView(h.buffer, h.byteOffset, h.length);
  const type = dv.getUint8(0);
  if (type > 9) return "ERR_FRAME_TYPE";
  if (h.length < 2) return null;
  const flags = dv.getUint8(1);
  if (flags !== 0 && !(type === 1 && flags === 1)) return "ERR_FRAME_FLAGS"; // OPEN may carry 0x01 (datagram flow)
  if (h.length < 6) return null;
  const id = dv.getUint32(2);
  const connectionLevel = type === 6 || type === 7 || type === 8 || type === 9;
  if (id >= 2 ** 31 || (connectionLevel && id !== 0) || (!connectionLevel && id === 0)) return "ERR_FRAME_STREAM_ID";
  if (h.length < 10) return null;
  const len = dv.getUint32(6);
  if (type === 0 && len > maxFrame) return "ERR_FRAME_SIZE";
  if (type === 1 && (len < 8 || len > 352)) return "ERR_FRAME_SIZE";
  if (type === 9 && (len < CONTROL_MIN || len > CONTROL_MAX)) return "ERR_FRAME_SIZE";
  if (type > 1 && type < 9 && len !== FIXED[type]) return "ERR_FRAME_SIZE";
  return null;
}

/**
 * Decodes all of `bytes` at once. A truncated DATA frame at the end yields its partial payload (as the
 * incremental decoder does); a truncated control frame yields nothing.
 */
export function oracleDecode(bytes: Uint8Array, maxFrame = 262144): { log: Ev[]; error: ErrorCode | null } {
  const log: Ev[] = [];
  let o = 0;
  while (o < bytes.length) {
    const h = bytes.slice(o, Math.min(o + 10, bytes.length));
    const err = oracleHeader(h, maxFrame);
    if (err !== null) return { log, error: err };
    if (h.length < 10) break;
    const dv = new DataView(h.buffer);
    const type = dv.getUint8(0);
    const id = dv.getUint32(2);
    const len = dv.getUint32(6);
    const p = bytes.slice(o + 10, Math.min(o + 10 + len, bytes.length));
    if (type === 0) {
      if (p.length > 0 || len === 0) appendEvent(log, { t: "data", id, bytes: p });
      o += 10 + len;
      continue;
    }
    if (p.length < len) break;
    const pv = new DataView(p.buffer);
    if (type === 1) {
      const open = oracleOpen(p);
      if (open === null) return { log, error: "ERR_FRAME_PAYLOAD" };
      log.push({ t: "open", id, open: h[1] === 1 ? { ...open, datagram: true } : open });
    } else if (type === 2) log.push({ t: "ack", id });
    else if (type === 3) log.push({ t: "fin", id });
    else if (type === 4) log.push({ t: "rst", id, code: pv.getUint32(0) });
    else if (type === 5) {
      const inc = pv.getUint32(0);
      if (inc === 0 || inc >= 2 ** 31) return { log, error: "ERR_FRAME_PAYLOAD" };
      log.push({ t: "window", id, inc });
    } else if (type === 9) log.push({ t: "control", bytes: p });
    else if (type === 6) log.push({ t: "ping", opaque: p });
    else if (type === 7) log.push({ t: "pong", opaque: p });
    else {
      const last = pv.getUint32(0);
      if (last >= 2 ** 31) return { log, error: "ERR_FRAME_PAYLOAD" };
      log.push({ t: "goaway", last, code: pv.getUint32(4) });
    }
    o += 10 + len;
  }
  return { log, error: null };
}
