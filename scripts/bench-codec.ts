/**
 * Codec micro-benchmark: FrameDecoder / FrameEncoder against naive copying versions, DATA frames of 64 B, 16 KiB
 * and 64 KiB payloads. Interleaved rounds, medians; prints markdown tables. Runs in well under 30 s.
 *
 *   bun scripts/bench-codec.ts [--rounds=7] [--min-ms=100]
 *
 * Decode input: ~8 MiB of DATA frames (stream ids 1..8) cut into 64 KiB chunks, as a socket would deliver them.
 * Encode output: the same frames appended to a 256 KiB staging buffer, "written" (consumed) whenever it holds
 * ≥ 256 KiB. MB/s counts wire bytes (header + payload), 10^6 bytes per MB.
 */
import { FRAME_HEADER_BYTES } from "../src/protocol/constants.ts";
import { FrameDecoder } from "../src/protocol/frame-decoder.ts";
import { FrameEncoder } from "../src/protocol/frame-encoder.ts";
import type { FrameHandler } from "../src/protocol/frames.ts";

const arg = (name: string, def: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? def);
const ROUNDS = arg("rounds", 7);
const MIN_MS = arg("min-ms", 100);
const STREAM_BYTES = 8 << 20;
const CHUNK_BYTES = 64 << 10;
const STAGING_BYTES = 256 << 10;
const SIZES = [64, 16384, 65536];

/** Counts what the decoders deliver (so nothing is optimised away, and both can be checked equal). */
let sinkBytes = 0;
let sinkFrames = 0;
const counting: FrameHandler = {
  handleData: (_id, p) => void (sinkBytes += p.length),
  handleOpen: () => {}, handleAck: () => {}, handleFin: () => {}, handleRst: () => {}, handleWindow: () => {},
  handlePing: () => {}, handlePong: () => {}, handleGoAway: () => {}, handleControl: () => {},
};

/** Like `counting`, but copies every payload once (into a reused buffer), as a consumer writing it on would. */
const copySink = new Uint8Array(1 << 20);
const copying: FrameHandler = {
  ...counting,
  handleData: (_id, p) => {
    copySink.set(p);
    sinkBytes += p.length;
  },
};

/** Naive decoder: concatenates its leftover with every whole chunk, reads headers with DataView, slices payloads. */
class NaiveDecoder {
  private left = new Uint8Array(0);
  push(chunk: Uint8Array): void {
    const b = new Uint8Array(this.left.length + chunk.length);
    b.set(this.left);
    b.set(chunk, this.left.length);
    let o = 0;
    while (b.length - o >= FRAME_HEADER_BYTES) {
      const dv = new DataView(b.buffer, b.byteOffset + o, FRAME_HEADER_BYTES);
      const len = dv.getUint32(6);
      if (b.length - o - FRAME_HEADER_BYTES < len) break;
      const payload = b.slice(o + FRAME_HEADER_BYTES, o + FRAME_HEADER_BYTES + len);
      counting.handleData(dv.getUint32(2), payload);
      sinkFrames++;
      o += FRAME_HEADER_BYTES + len;
    }
    this.left = b.slice(o);
  }
}

/** Naive encoder: a fresh buffer per frame (header via DataView + payload copy), one "write" per frame. */
function naiveEncode(payload: Uint8Array, frames: number, write: (b: Uint8Array) => void): void {
  for (let i = 0; i < frames; i++) {
    const f = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
    const dv = new DataView(f.buffer);
    dv.setUint8(0, 0);
    dv.setUint32(2, 1 + (i & 7));
    dv.setUint32(6, payload.length);
    f.set(payload, FRAME_HEADER_BYTES);
    write(f);
  }
}

interface Workload { size: number; frames: number; wire: number; payload: Uint8Array; chunks: Uint8Array[] }

function workload(size: number): Workload {
  const payload = Uint8Array.from({ length: size }, (_, i) => i & 255);
  const frames = Math.floor(STREAM_BYTES / (FRAME_HEADER_BYTES + size));
  const enc = new FrameEncoder(STREAM_BYTES + 1024);
  for (let i = 0; i < frames; i++) enc.data(1 + (i & 7), payload);
  const stream = enc.pending().slice();
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < stream.length; o += CHUNK_BYTES) chunks.push(stream.slice(o, o + CHUNK_BYTES)); // fresh buffers
  return { size, frames, wire: stream.length, payload, chunks };
}

type Impl = (w: Workload) => void;
let written = 0;
const impls: Record<string, Impl> = {
  "decode ours": (w) => {
    const d = new FrameDecoder(counting, { maxFrameBytes: 1 << 20 });
    for (const c of w.chunks) d.push(c);
  },
  "decode ours+copy": (w) => {
    const d = new FrameDecoder(copying, { maxFrameBytes: 1 << 20 });
    for (const c of w.chunks) d.push(c);
  },
  "decode naive": (w) => {
    const d = new NaiveDecoder();
    for (const c of w.chunks) d.push(c);
  },
  "encode ours": (w) => {
    const e = new FrameEncoder(STAGING_BYTES);
    for (let i = 0; i < w.frames; i++) {
      e.data(1 + (i & 7), w.payload);
      if (e.pendingBytes >= STAGING_BYTES) {
        written += e.pending().length;
        e.consume(e.pendingBytes);
      }
    }
    written += e.pendingBytes;
    e.consume(e.pendingBytes);
  },
  "encode naive": (w) => naiveEncode(w.payload, w.frames, (b) => void (written += b.length)),
};

/** Runs `impl` over the workload repeatedly for at least MIN_MS; returns wire MB/s and frames/s. */
function measure(impl: Impl, w: Workload): { mbps: number; fps: number } {
  let passes = 0;
  const t0 = Bun.nanoseconds();
  let t = t0;
  do {
    impl(w);
    passes++;
    t = Bun.nanoseconds();
  } while (t - t0 < MIN_MS * 1e6);
  const s = (t - t0) / 1e9;
  return { mbps: (w.wire * passes) / s / 1e6, fps: (w.frames * passes) / s };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const started = Bun.nanoseconds();
const loads = SIZES.map(workload);
// Sanity: both decoders deliver every payload byte.
for (const w of loads) {
  for (const name of ["decode ours", "decode ours+copy", "decode naive"]) {
    sinkBytes = 0;
    impls[name]!(w);
    if (sinkBytes !== w.frames * w.size) throw new Error(`${name} delivered ${sinkBytes} of ${w.frames * w.size}`);
  }
}
const results = new Map<string, { mbps: number[]; fps: number[] }>();
const names = Object.keys(impls);
for (let round = 0; round < ROUNDS; round++) {
  for (const w of loads) {
    const order = round % 2 === 0 ? names : [...names].reverse(); // alternate who goes first
    for (const name of order) {
      const r = measure(impls[name]!, w);
      const key = `${name}|${w.size}`;
      const acc = results.get(key) ?? { mbps: [], fps: [] };
      acc.mbps.push(r.mbps);
      acc.fps.push(r.fps);
      results.set(key, acc);
    }
  }
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const frames = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(1)} k`);
const label = (size: number) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
const range = (xs: number[]) => `[${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`;
const cell = (key: string) => {
  const r = results.get(key)!;
  return `${fmt(median(r.mbps))} ${range(r.mbps)} | ${frames(median(r.fps))}`;
};
const ratio = (a: string, b: string) => `${(median(results.get(a)!.mbps) / median(results.get(b)!.mbps)).toFixed(2)}×`;
console.log(`\n### decode (median of ${ROUNDS} rounds; MB/s [min–max], frames/s)\n`);
console.log("| payload | ours MB/s | ours frames/s | ours+copy MB/s | ours+copy frames/s | naive MB/s | naive frames/s | ours / naive | ours+copy / naive |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const size of SIZES) {
  const k = (n: string) => `decode ${n}|${size}`;
  console.log(`| ${label(size)} | ${cell(k("ours"))} | ${cell(k("ours+copy"))} | ${cell(k("naive"))} | ${ratio(k("ours"), k("naive"))} | ${ratio(k("ours+copy"), k("naive"))} |`);
}
console.log(`\n### encode (median of ${ROUNDS} rounds; MB/s [min–max], frames/s)\n`);
console.log("| payload | ours MB/s | ours frames/s | naive MB/s | naive frames/s | ours / naive |");
console.log("|---|---|---|---|---|---|");
for (const size of SIZES) {
  const k = (n: string) => `encode ${n}|${size}`;
  console.log(`| ${label(size)} | ${cell(k("ours"))} | ${cell(k("naive"))} | ${ratio(k("ours"), k("naive"))} |`);
}
console.log(`\nBun ${Bun.version}, ${ROUNDS} rounds × ≥${MIN_MS} ms per cell, total ${((Bun.nanoseconds() - started) / 1e9).toFixed(1)} s (written ${written > 0 ? "ok" : "?"})`);
