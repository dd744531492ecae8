/**
 * A session: the stream multiplexer over one data connection, on either side (SPEC.md §2). Owns the stream table,
 * frame dispatch, liveness (PING/PONG), GOAWAY and the per-connection read budget.
 *
 * Writes go through a FrameWriter (frame-writer.ts): staged, written once per event-loop turn, with backpressure.
 * Streams stop sending (and pause their local socket) while the staging buffer is above the high-water mark, so
 * memory is bounded; control frames bypass that gate but a peer that makes replies pile up is disconnected.
 */
import { FrameDecoder, type FrameHandler, type OpenPayload } from "../protocol/frame-decoder.ts";
import type { FrameEncoder } from "../protocol/frame-encoder.ts";
import { FRAME_HEADER_BYTES, MAX_STREAM_ID, WireCode } from "../protocol/constants.ts";
import { isValidOpenPayload } from "../protocol/open-payload.ts";
import { TunnelError } from "../errors.ts";
import { decodeControl, encodeControl, type ControlMessage } from "../protocol/control.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import { Stream, type LocalSocket, type StreamHost } from "./stream.ts";
import { FrameWriter, type FrameSocket } from "./frame-writer.ts";

export type { FrameSocket } from "./frame-writer.ts";

/** Session settings (negotiated windows come from the handshake). */
export interface SessionOptions {
  role: "server" | "agent";
  /** Per-stream window we grant the peer (bytes). */
  localWindow: number;
  /** Per-stream window the peer granted us (bytes). */
  peerWindow: number;
  /** Largest DATA payload we accept. */
  localMaxFrame: number;
  /** Largest DATA payload the peer accepts. */
  peerMaxFrame: number;
  /** Concurrent streams allowed; excess OPENs are refused with REFUSED_STREAM. */
  maxStreams: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** Staging bytes above which streams stop sending (default 1 MiB). */
  highWaterBytes?: number;
  /**
   * Bytes of replies (PONG, REFUSED_STREAM) a peer may make us stage while our socket accepts nothing; past this it
   * is disconnected with ENHANCE_YOUR_CALM: it asks but does not read. Default 256 KiB.
   */
  controlQueueMaxBytes?: number;
  /** Aside connections only: CONTROL frames are allowed (elsewhere they are a protocol error). */
  acceptControl?: boolean;
}

/** Callbacks from a session to its role. */
export interface SessionEvents {
  /** Agent only: the server opened a stream. The callee attaches a target or resets it. */
  onOpen?(stream: Stream): void;
  /** Server only: the agent acknowledged a stream (target connected). */
  onAck?(stream: Stream): void;
  /** A stream ended (`code` null for a clean finish). */
  onStreamEnd?(stream: Stream, code: number | null): void;
  /** The peer sent GOAWAY: no new streams on this session. */
  onGoAway?(code: number): void;
  /** A valid CONTROL message arrived (aside connections only). */
  onControl?(msg: ControlMessage): void;
  /** A PONG arrived; round trip in ms. */
  onRtt?(ms: number): void;
  /** The session is closed (once). `error` is set unless it was a clean close. */
  onClose(error?: TunnelError): void;
}

/** Default bound on replies staged while the peer does not read (TUNNEL_CONTROL_QUEUE_MAX_BYTES). */
const CONTROL_REPLY_LIMIT_BYTES = 262_144;
/**
 * Unsent bytes that streams' local sockets may have delivered on one session before every stream stops reading:
 * without it, each of thousands of visitors could park one 512 KiB read while the connection is backed up.
 */
const PENDING_OUT_BUDGET_BYTES = 8 * 1024 * 1024;

/** The stream multiplexer over one connection. Feed it socket events (it is the socket's owner). */
export class Session implements StreamHost, FrameHandler {
  readonly streams = new Map<number, Stream>();
  readonly peerMaxFrame: number;
  private readonly writer: FrameWriter;
  /** The writer's staging encoder (frames are appended here). */
  private readonly encoder: FrameEncoder;
  private readonly decoder: FrameDecoder;
  private blocked = new Set<Stream>();
  private nextStreamId = 1;
  private highestStreamId = 0;
  private lastReceivedAt = performance.now();
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private readonly pingScratch = new Uint8Array(8);
  /** No new streams (we or the peer sent GOAWAY, or ids ran out). */
  draining = false;
  closed = false;
  /** Streams ever opened on this session. */
  streamsOpened = 0;
  /** Last measured round trip (ms), or -1. */
  rttMs = -1;
  /** Unsent bytes read from streams' local sockets (see pendingChanged). */
  private pendingOut = 0;
  /** Streams stop reading their local sockets while pendingOut is over the budget. */
  readsPaused = false;
  /** The peer sent GOAWAY (acted on once). */
  private peerWentAway = false;

  constructor(
    socket: FrameSocket,
    private readonly opts: SessionOptions,
    private readonly events: SessionEvents,
  ) {
    this.peerMaxFrame = opts.peerMaxFrame;
    this.writer = new FrameWriter(
      socket,
      opts.highWaterBytes ?? 1024 * 1024,
      opts.controlQueueMaxBytes ?? CONTROL_REPLY_LIMIT_BYTES,
      () => this.resumeBlocked(),
      () => this.protocolError(new TunnelError("ERR_CONTROL_FLOOD")),
    );
    this.encoder = this.writer.encoder;
    this.decoder = new FrameDecoder(this, { maxFrameBytes: opts.localMaxFrame });
    if (opts.heartbeatIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.tick(), opts.heartbeatIntervalMs);
      this.heartbeat.unref?.();
    }
  }

  /** Open streams. */
  get activeStreams(): number {
    return this.streams.size;
  }

  // --- server: opening streams ---

  /**
   * Opens a stream to the agent for a visitor socket (server only). Returns null if the session is draining,
   * closed, or out of stream ids (then it starts draining).
   */
  openStream(local: LocalSocket, open: OpenPayload): Stream | null {
    // At the cap the visitor goes to another connection (or is refused): never more than maxStreams open here.
    if (this.closed || this.draining || this.streams.size >= this.opts.maxStreams) return null;
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) {
      this.goAway(WireCode.STREAM_IDS_EXHAUSTED);
      return null;
    }
    // Validate before any state changes: an address the OPEN cannot carry is sent as unknown.
    if (!isValidOpenPayload(open)) open = { ...open, visitorAddress: "", visitorPort: 0, routeAddress: "", routePort: 0 };
    if (!isValidOpenPayload(open)) return null;
    this.nextStreamId = id + 1;
    this.highestStreamId = id;
    const stream = new Stream(id, this, this.opts.peerWindow, this.opts.localWindow, open);
    stream.local = local;
    stream.updateReading();
    this.streams.set(id, stream);
    this.streamsOpened++;
    this.encoder.open(id, open);
    this.writer.schedule();
    return stream;
  }

  /** Sends GOAWAY (no new streams); existing streams go on. */
  goAway(code: number): void {
    if (this.closed) return;
    if (!this.draining) {
      this.draining = true;
      this.encoder.goAway(this.highestStreamId, code);
      this.writer.schedule();
    }
  }

  /**
   * Closes the session. With an error, sends GOAWAY with its wire code first. Streams are aborted.
   * Safe to call more than once.
   */
  close(error?: TunnelError, wireCode: number = WireCode.NO_ERROR): void {
    if (this.closed) return;
    if (error) this.encoder.goAway(this.highestStreamId, wireCode);
    this.writer.flush();
    this.shutdown(error);
    // Frames already staged (a stream's last DATA and FIN) still go out; then FIN, and wait for the peer's.
    this.writer.linger();
  }

  /** Resolves when the connection itself is closed (after close(), once the last staged bytes went out). */
  get gone(): Promise<void> {
    return this.writer.gone;
  }

  // --- socket events (forwarded by the connection's SocketOwner, see sessionOwner) ---

  /** Bytes from the connection. */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.lastReceivedAt = performance.now();
    const err = this.decoder.push(chunk);
    if (err !== null) this.protocolError(err);
  }

  /** The connection can take more bytes. */
  drained(): void {
    this.writer.drained();
  }

  /** The peer sent GOAWAY: it opens no more streams here. */
  get peerGoneAway(): boolean {
    return this.peerWentAway;
  }

  /** How long since the peer last sent anything (ms). */
  get silentForMs(): number {
    return performance.now() - this.lastReceivedAt;
  }

  /** The peer sent FIN: no more frames can arrive, so the session ends. */
  peerEnded(): void {
    this.close(new TunnelError("ERR_SESSION_CLOSED", "peer closed the connection"));
  }

  /** The connection is gone. */
  socketClosed(error?: Error): void {
    this.writer.socketClosed();
    if (this.closed) return;
    this.shutdown(new TunnelError("ERR_SESSION_CLOSED", error ? `connection lost: ${error.message}` : "connection closed"));
  }

  // --- StreamHost ---

  canSend(): boolean {
    return !this.closed && this.writer.canAccept();
  }

  pendingChanged(delta: number): void {
    this.pendingOut += delta;
    const budget = PENDING_OUT_BUDGET_BYTES;
    if (!this.readsPaused && this.pendingOut > budget) this.setReadsPaused(true);
    else if (this.readsPaused && this.pendingOut <= budget / 2) this.setReadsPaused(false);
  }

  /** Over budget: every stream stops reading (O(streams), only when the budget is crossed, with hysteresis). */
  private setReadsPaused(paused: boolean): void {
    this.readsPaused = paused;
    for (const s of this.streams.values()) s.updateReading();
  }

  block(stream: Stream): void {
    this.blocked.add(stream);
    this.writer.schedule();
  }

  sendData(streamId: number, data: Uint8Array, offset: number, length: number): void {
    this.encoder.data(streamId, data, offset, length);
    this.writer.flushIfFull();
  }

  sendFin(streamId: number): void {
    this.encoder.fin(streamId);
    this.writer.schedule();
  }

  sendRst(streamId: number, code: number): void {
    this.control();
    this.encoder.rst(streamId, code);
  }

  sendWindow(streamId: number, increment: number): void {
    this.control();
    this.encoder.window(streamId, increment);
  }

  sendAck(streamId: number): void {
    this.control();
    this.encoder.ack(streamId);
  }

  streamDone(stream: Stream, code: number | null): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.events.onStreamEnd?.(stream, code);
  }

  // --- FrameHandler (frames from the peer) ---

  onOpen(streamId: number, open: OpenPayload): void {
    if (this.closed) return;
    if (this.opts.role !== "agent" || streamId <= this.highestStreamId) {
      this.protocolError(new TunnelError("ERR_PROTOCOL", `unexpected OPEN for stream ${streamId}`));
      return;
    }
    this.highestStreamId = streamId;
    const stream = new Stream(streamId, this, this.opts.peerWindow, this.opts.localWindow, open);
    // Not refused while we drain: an OPEN the server sent before our GOAWAY reached it is served (refusing it
    // would reset a visitor that other agents could have taken). Only the cap refuses.
    if (this.streams.size >= this.opts.maxStreams) {
      this.reply(FRAME_HEADER_BYTES + 4);
      this.encoder.rst(streamId, WireCode.REFUSED_STREAM);
      return;
    }
    this.streams.set(streamId, stream);
    this.streamsOpened++;
    this.events.onOpen?.(stream);
  }

  // Every handler returns at once after close(): the decoder may still be delivering the rest of a chunk.

  onData(streamId: number, payload: Uint8Array): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "DATA");
    stream.handleData(payload);
  }

  onAck(streamId: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "ACK");
    if (this.opts.role !== "server") return this.protocolError(new TunnelError("ERR_PROTOCOL", "ACK sent to an agent"));
    this.events.onAck?.(stream);
  }

  onFin(streamId: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "FIN");
    stream.handleFin();
  }

  onRst(streamId: number, code: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "RST");
    stream.handleRst(code);
  }

  onWindow(streamId: number, increment: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "WINDOW");
    stream.handleWindow(increment);
  }

  onPing(opaque: Uint8Array): void {
    if (this.closed) return;
    this.reply(FRAME_HEADER_BYTES + 8);
    this.encoder.pong(opaque);
  }

  onPong(opaque: Uint8Array): void {
    if (this.closed) return;
    const sentAt = new DataView(opaque.buffer, opaque.byteOffset, 8).getFloat64(0);
    const rtt = performance.now() - sentAt;
    if (rtt >= 0 && rtt < 3_600_000) {
      this.rttMs = rtt;
      this.events.onRtt?.(rtt);
    }
  }

  onControl(payload: Uint8Array): void {
    if (this.closed) return;
    const msg = this.opts.acceptControl ? decodeControl(payload) : null;
    if (msg === null) {
      this.protocolError(new TunnelError("ERR_FRAME_PAYLOAD", this.opts.acceptControl ? "malformed CONTROL" : "CONTROL on a data connection"));
      return;
    }
    if (msg.type !== "unknown") this.events.onControl?.(msg);
  }

  /** Sends a CONTROL message (aside connections). */
  sendControl(msg: ControlMessage): void {
    if (this.closed) return;
    this.control();
    this.encoder.control(encodeControl(msg));
  }

  onGoAway(_lastStreamId: number, code: number): void {
    if (this.closed || this.peerWentAway) return;
    this.peerWentAway = true;
    this.draining = true;
    this.events.onGoAway?.(code);
  }

  // --- internals ---

  /** A frame for a stream not in the table: late (already closed) frames are ignored, others are an error. */
  private unknownStream(streamId: number, what: string): void {
    if (streamId > this.highestStreamId) {
      this.protocolError(new TunnelError("ERR_PROTOCOL", `${what} for stream ${streamId} that was never opened`));
    }
  }

  private protocolError(err: TunnelError): void {
    const code =
      err.code === "ERR_FRAME_SIZE"
        ? WireCode.FRAME_SIZE_ERROR
        : err.code === "ERR_CONTROL_FLOOD"
          ? WireCode.ENHANCE_YOUR_CALM
          : err.code === "ERR_KEEPALIVE_TIMEOUT"
            ? WireCode.KEEPALIVE_TIMEOUT
            : WireCode.PROTOCOL_ERROR;
    this.close(err, code);
  }

  /** Before staging a control frame of our own (WINDOW, ACK, RST, PING, CONTROL). */
  private control(): void {
    this.writer.schedule();
  }

  /**
   * Before staging a reply the peer asked for (PONG, a refusal): a peer that keeps asking while it does not read
   * is cut off (see FrameWriter.reply). DATA and our own frames do not count.
   */
  private reply(bytes: number): void {
    this.writer.reply(bytes);
  }

  /** Everything staged was written: streams that waited for room send again. */
  private resumeBlocked(): void {
    if (this.closed || this.blocked.size === 0) return;
    const streams = [...this.blocked];
    this.blocked.clear();
    for (const s of streams) s.pump();
  }

  private tick(): void {
    if (this.closed) return;
    const now = performance.now();
    if (now - this.lastReceivedAt > this.opts.heartbeatTimeoutMs) {
      this.protocolError(new TunnelError("ERR_KEEPALIVE_TIMEOUT"));
      return;
    }
    new DataView(this.pingScratch.buffer).setFloat64(0, now);
    this.control();
    this.encoder.ping(this.pingScratch);
  }

  private shutdown(error?: TunnelError): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.stop();
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const code = error ? WireCode.CANCEL : WireCode.NO_ERROR;
    for (const s of [...this.streams.values()]) s.abort(code);
    this.streams.clear();
    this.blocked.clear();
    this.events.onClose(error);
  }
}

/** A SocketOwner that feeds a session (used once the handshake is over). */
export function sessionOwner(session: Session): SocketOwner {
  return {
    onData: (chunk) => session.receive(chunk),
    onDrain: () => session.drained(),
    onEnd: () => session.peerEnded(),
    onClose: (error) => session.socketClosed(error),
  };
}
