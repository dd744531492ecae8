/**
 * The state and lifecycle of a session (SPEC.md §2): the stream table and stream ids, opening streams, GOAWAY,
 * close, liveness (PING every heartbeat interval, the keepalive timeout), the per-connection read budget, and the
 * StreamHost side that streams send through. Session (session.ts) adds the inbound side: the decoder and one
 * handler per frame type.
 *
 * Writes go through a FrameWriter (frame-writer.ts): staged, written once per event-loop turn, with backpressure.
 * Streams stop sending (and pause their local socket) while the staging buffer is above the high-water mark, so
 * memory is bounded; control frames bypass that gate but a peer that makes replies pile up is disconnected.
 */
import type { OpenPayload } from "../protocol/frame-decoder.ts";
import type { FrameEncoder } from "../protocol/frame-encoder.ts";
import { DATAGRAM_PREFIX_BYTES, DEFAULT_CONTROL_QUEUE_MAX_BYTES, MAX_STREAM_ID, WireCode } from "../protocol/constants.ts";
import { isValidOpenPayload } from "../protocol/open-payload.ts";
import { TunnelError, type ErrorCode } from "../errors.ts";
import { encodeControl, type ControlMessage } from "../protocol/control.ts";
import { Stream, type LocalSocket } from "./stream.ts";
import { PENDING_OUT_BUDGET_BYTES, SEND_QUANTUM_BYTES, type StreamHost } from "./stream-host.ts";
import { FrameWriter, type FrameSocket } from "./frame-writer.ts";
import { BlockedStreams } from "./blocked-streams.ts";
import { InboundTally, processInboundOf } from "./inbound-queue.ts";
import { WindowContext } from "./receive-window.ts";
import { resetIdleStreams, startIdleClock } from "./idle-streams.ts";
import type { SessionEvents, SessionOptions } from "./session-options.ts";

/** The wire code a GOAWAY carries when a session closes for an error (SPEC.md §5.2); every other code: PROTOCOL_ERROR. */
const GOAWAY_CODE_OF: Partial<Record<ErrorCode, WireCode>> = {
  ERR_FRAME_SIZE: WireCode.FRAME_SIZE_ERROR,
  ERR_CONTROL_FLOOD: WireCode.ENHANCE_YOUR_CALM,
  ERR_KEEPALIVE_TIMEOUT: WireCode.KEEPALIVE_TIMEOUT,
};

/**
 * Everything of a session but the inbound frame handlers: only Session (session.ts) extends it, and only Session is
 * constructed. Protected members are what those handlers use.
 */
export abstract class SessionCore implements StreamHost<Stream> {
  readonly streams = new Map<number, Stream>();
  readonly peerMaxFrame: number;
  protected readonly writer: FrameWriter;
  protected readonly encoder: FrameEncoder; // the writer's staging encoder (frames are appended here)
  private readonly blocked = new BlockedStreams<Stream>(() => !this.closed && this.writer.canAccept());
  private nextStreamId = 1;
  protected highestStreamId = 0;
  protected lastReceivedAt = performance.now();
  private readonly heartbeat: ReturnType<typeof setInterval> | null;
  /** No new streams (we or the peer sent GOAWAY, or ids ran out). */
  draining = false;
  closed = false;
  /** Streams ever opened on this session. */
  streamsOpened = 0;
  /** Open datagram streams (UDP flows), at most half of the stream limit (Session.hasDatagramRoom). */
  datagramStreams = 0;
  /** Unsent bytes read from streams' local sockets (see pendingChanged). */
  private pendingOut = 0;
  /** Streams stop reading their local sockets while pendingOut is over the budget. */
  readsPaused = false;
  /** The peer sent GOAWAY (acted on once). */
  protected peerWentAway = false;
  /** Peer bytes held for local sockets and window growth (StreamHost), with the inbound budgets. */
  readonly inbound: InboundTally;
  /** What the streams' adaptive windows use (StreamHost; round trips, see receive-window.ts). */
  readonly windows: WindowContext;
  /** The idle clock (StreamHost, see idle-streams.ts); 0 forever without a stream idle timeout. */
  epoch = 0;
  private readonly idleClock: ReturnType<typeof setInterval> | null;

  constructor(socket: FrameSocket, protected readonly opts: SessionOptions, protected readonly events: SessionEvents) {
    this.peerMaxFrame = opts.peerMaxFrame;
    this.writer = new FrameWriter(
      socket,
      opts.highWaterBytes ?? 1024 * 1024,
      opts.controlQueueMaxBytes ?? DEFAULT_CONTROL_QUEUE_MAX_BYTES,
      () => this.blocked.resume(),
      () => this.protocolError(new TunnelError("ERR_CONTROL_FLOOD")),
    );
    this.encoder = this.writer.encoder;
    const process = opts.inboundMaxBytes !== undefined ? processInboundOf[opts.role] : null;
    this.inbound = new InboundTally(process, opts.inboundMaxBytesPerConnection, opts.inboundMaxBytes);
    this.windows = new WindowContext(this.inbound, opts.windowMaxBytes ?? 0, opts.clock ?? (() => performance.now()));
    this.heartbeat = opts.heartbeatIntervalMs > 0 ? setInterval(() => this.tick(), opts.heartbeatIntervalMs) : null;
    this.heartbeat?.unref?.();
    if (this.windows.windowMaxBytes > (opts.openWindow ?? opts.localWindow)) this.ping(); // a round trip before the first window fills
    this.idleClock = startIdleClock(opts.streamIdleTimeoutMs, () => resetIdleStreams(this.streams.values(), ++this.epoch));
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
    const stream = this.newStream(id, open);
    stream.attach(local);
    this.streams.set(id, stream);
    this.streamsOpened++;
    this.encoder.open(id, open);
    this.writer.schedule();
    return stream;
  }

  /** Sends GOAWAY (no new streams); existing streams go on. */
  goAway(code: number): void {
    if (this.closed || this.draining) return;
    this.setDraining();
    this.encoder.goAway(this.highestStreamId, code);
    this.writer.schedule();
  }

  /** Sends a CONTROL message (aside connections). */
  sendControl(msg: ControlMessage): void {
    if (this.closed) return;
    this.control();
    this.encoder.control(encodeControl(msg));
  }

  /** Closes the session. With an error, sends GOAWAY with its wire code first. Streams are aborted. Idempotent. */
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
  // --- socket events (SocketOwner; onData is Session's) ---

  /** The connection can take more bytes. */
  onDrain(): void {
    this.writer.drained();
  }

  /** The peer sent FIN: no more frames can arrive, so the session ends. */
  onEnd(): void {
    this.close(new TunnelError("ERR_SESSION_CLOSED", "peer closed the connection"));
  }

  /** The connection is gone. */
  onClose(error?: Error): void {
    this.writer.socketClosed();
    if (this.closed) return;
    this.shutdown(new TunnelError("ERR_SESSION_CLOSED", error ? `connection lost: ${error.message}` : "connection closed"));
  }

  // --- StreamHost ---

  canSend(staged: number): boolean {
    return !this.closed && this.writer.canAccept() && (staged < SEND_QUANTUM_BYTES || this.blocked.size === 0);
  }
  /** StreamHost: room to stage datagrams, UDP's share of the staging buffer (Session's). */
  abstract canSendDatagrams(): boolean;

  pendingChanged(delta: number): void {
    this.pendingOut += delta;
    if (!this.readsPaused && this.pendingOut > PENDING_OUT_BUDGET_BYTES) this.setReadsPaused(true);
    else if (this.readsPaused && this.pendingOut <= PENDING_OUT_BUDGET_BYTES / 2) this.setReadsPaused(false);
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
    this.blocked.staged += length;
    this.encoder.data(streamId, data, offset, length);
    this.writer.flushIfFull();
  }

  sendDatagram(streamId: number, payload: Uint8Array): void {
    this.blocked.staged += DATAGRAM_PREFIX_BYTES + payload.byteLength;
    this.encoder.datagram(streamId, payload, this.peerMaxFrame);
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
    const mine = this.streams.get(stream.id) === stream;
    if (mine) this.streams.delete(stream.id);
    if (mine && stream.open.datagram === true) this.datagramStreams--;
    this.blocked.delete(stream);
    this.events.onStreamEnd?.(stream, code);
  }

  // --- internals ---

  protected newStream(id: number, open: OpenPayload): Stream {
    const o = this.opts;
    if (open.datagram === true) this.datagramStreams++;
    return new Stream(id, this, o.peerWindow, o.localWindow, o.openWindow ?? o.localWindow, open);
  }

  /** Closes the session for `err`, with GOAWAY carrying its wire code (GOAWAY_CODE_OF, else PROTOCOL_ERROR). */
  protected protocolError(err: TunnelError): void {
    this.close(err, GOAWAY_CODE_OF[err.code] ?? WireCode.PROTOCOL_ERROR);
  }

  /** Before staging a control frame of our own (WINDOW, ACK, RST, PING, CONTROL). */
  private control(): void {
    this.writer.schedule();
  }

  /**
   * Before staging a reply the peer asked for (PONG, a refusal): a peer that keeps asking while it does not read
   * is cut off (see FrameWriter.reply). DATA and our own frames do not count.
   */
  protected reply(bytes: number): void {
    this.writer.reply(bytes);
  }

  private tick(): void {
    if (this.closed) return;
    const now = performance.now();
    if (now - this.lastReceivedAt > this.opts.heartbeatTimeoutMs) {
      this.protocolError(new TunnelError("ERR_KEEPALIVE_TIMEOUT"));
      return;
    }
    this.encoder.trim(); // a burst's staging memory goes back once everything is written
    this.ping();
    for (const s of this.streams.values()) s.idleCheck();
  }

  /** No new streams from now on (onUnready, unless closed already); datagram streams end now (SPEC.md §2.5). */
  protected setDraining(): void {
    const first = !this.draining && !this.closed;
    this.draining = true;
    if (!first) return;
    this.events.onUnready?.();
    // A flow never ends by itself: it would hold a drain to its deadline. Its next datagram opens a flow elsewhere.
    if (this.datagramStreams > 0) for (const s of [...this.streams.values()]) if (s.open.datagram === true) s.reset(WireCode.SHUTTING_DOWN);
  }

  /** Sends a PING carrying the time; its PONG gives a round trip. Also sent right after the handshake. */
  protected ping(): void {
    this.control();
    this.encoder.ping(this.windows.roundTrip.stamp());
  }

  private shutdown(error?: TunnelError): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.draining) this.events.onUnready?.();
    this.writer.stop();
    for (const timer of [this.heartbeat, this.idleClock]) if (timer !== null) clearInterval(timer);
    const code = error ? WireCode.CANCEL : WireCode.NO_ERROR;
    for (const s of [...this.streams.values()]) s.abort(code);
    this.streams.clear();
    this.blocked.clear();
    this.events.onClose(error);
  }
}
