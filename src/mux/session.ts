/**
 * A session: the stream multiplexer over one data connection, on either side (SPEC.md §2). This file is its inbound
 * side: bytes from the connection go through the FrameDecoder to one handler per frame type. The stream table,
 * lifecycle, liveness and the StreamHost side are in SessionCore (session-core.ts); writes go through a FrameWriter
 * (frame-writer.ts).
 */
import { FrameDecoder, type FrameHandler, type OpenPayload } from "../protocol/frame-decoder.ts";
import { FRAME_HEADER_BYTES, WireCode } from "../protocol/constants.ts";
import { TunnelError } from "../errors.ts";
import { decodeControl } from "../protocol/control.ts";
import type { SocketOwner } from "../transport/tcp.ts";
import { releaseChunk } from "../transport/read-buffer.ts";
import { InboundQueue } from "./inbound-queue.ts";
import type { FrameSocket } from "./frame-writer.ts";
import { SessionCore } from "./session-core.ts";
import type { SessionEvents, SessionOptions } from "./session-options.ts";

export type { FrameSocket } from "./frame-writer.ts";

/** The part of a connection's staging buffer (high-water mark) datagram streams may fill (SPEC.md §2.5). */
const UDP_SHARE = 0.25;
export type { SessionEvents, SessionOptions } from "./session-options.ts";

/**
 * The stream multiplexer over one connection. Feed it socket events (it is the socket's owner). Most of its API
 * (openStream, goAway, close, the stream table, the other socket events, …) is SessionCore's; this class adds
 * onData() and the frame handlers (handle*).
 */
export class Session extends SessionCore implements FrameHandler, SocketOwner {
  private readonly decoder: FrameDecoder;

  constructor(socket: FrameSocket, opts: SessionOptions, events: SessionEvents) {
    super(socket, opts, events);
    this.decoder = new FrameDecoder(this, { maxFrameBytes: opts.localMaxFrame });
  }

  /** Last measured round trip (ms), or -1. */
  get rttMs(): number {
    return this.windows.roundTrip.lastMs;
  }

  /** The peer sent GOAWAY: it opens no more streams here. */
  get peerGoneAway(): boolean {
    return this.peerWentAway;
  }

  /** Size of the write staging buffer now (bytes): grown by a burst, back to its initial size once idle. */
  get stagingBytes(): number {
    return this.encoder.capacity;
  }

  /** How long since the peer last sent anything (ms). */
  get silentForMs(): number {
    return performance.now() - this.lastReceivedAt;
  }

  // --- socket events (Session is its connection's SocketOwner once the handshake is over) ---

  /** Bytes from the connection. */
  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    this.lastReceivedAt = performance.now();
    const kept = InboundQueue.keptViews;
    const err = this.decoder.push(chunk);
    if (err !== null) this.protocolError(err);
    // Every frame handler copies what it keeps (the decoder holds no views between chunks), except inbound queues
    // keeping DATA views: if none did, the chunk's memory goes back now rather than at the next collection.
    if (InboundQueue.keptViews === kept) releaseChunk(chunk);
  }

  // --- FrameHandler (frames from the peer) ---

  handleOpen(streamId: number, open: OpenPayload): void {
    if (this.closed) return;
    // Ids increase by exactly 1 (SPEC.md §2.2): a reused, lower or skipped id is a protocol error.
    if (this.opts.role !== "agent" || streamId !== this.highestStreamId + 1) {
      this.protocolError(new TunnelError("ERR_PROTOCOL", `unexpected OPEN for stream ${streamId}`));
      return;
    }
    this.highestStreamId = streamId;
    // Not refused while we drain: an OPEN the server sent before our GOAWAY reached it is served (refusing it
    // would reset a visitor that other agents could have taken). Only the cap and the inbound budgets (SPEC.md §2.2) refuse.
    // A datagram flow past UDP's half of the streams is refused like one past the limit (SPEC.md §2.5).
    const full = this.streams.size >= this.opts.maxStreams || (open.datagram === true && !this.hasDatagramRoom);
    const refused = full ? "stream_limit" : !this.inbound.fits(this.opts.localWindow) ? "inbound_budget" : null;
    if (refused !== null) {
      this.reply(FRAME_HEADER_BYTES + 4);
      this.encoder.rst(streamId, WireCode.REFUSED_STREAM);
      this.events.onRefused?.(refused);
      return;
    }
    const stream = this.newStream(streamId, open);
    this.streams.set(streamId, stream);
    this.streamsOpened++;
    this.events.onOpen?.(stream);
  }

  // Every handler returns at once after close(): the decoder may still be delivering the rest of a chunk.

  handleData(streamId: number, payload: Uint8Array): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "DATA");
    stream.handleData(payload);
  }

  handleAck(streamId: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "ACK");
    if (this.opts.role !== "server") return this.protocolError(new TunnelError("ERR_PROTOCOL", "ACK sent to an agent"));
    // A repeated ACK changes nothing and is not reported again.
    if (stream.handleAck()) this.events.onAck?.(stream);
  }

  handleFin(streamId: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "FIN");
    stream.handleFin();
  }

  handleRst(streamId: number, code: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "RST");
    stream.handleRst(code);
  }

  handleWindow(streamId: number, increment: number): void {
    if (this.closed) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.unknownStream(streamId, "WINDOW");
    stream.handleWindow(increment);
  }

  handlePing(opaque: Uint8Array): void {
    if (this.closed) return;
    this.reply(FRAME_HEADER_BYTES + 8);
    this.encoder.pong(opaque);
  }

  handlePong(opaque: Uint8Array): void {
    if (this.closed) return;
    const rtt = this.windows.roundTrip.pong(opaque);
    if (rtt >= 0) this.events.onRtt?.(rtt);
  }

  handleControl(payload: Uint8Array): void {
    if (this.closed) return;
    const msg = this.opts.acceptControl ? decodeControl(payload) : null;
    if (msg === null) {
      this.protocolError(new TunnelError("ERR_FRAME_PAYLOAD", this.opts.acceptControl ? "malformed CONTROL" : "CONTROL on a data connection"));
      return;
    }
    if (msg.type !== "unknown") this.events.onControl?.(msg);
  }

  handleGoAway(_lastStreamId: number, code: number): void {
    if (this.closed || this.peerWentAway) return;
    this.peerWentAway = true;
    this.setDraining();
    this.events.onGoAway?.(code);
  }

  /**
   * StreamHost: datagram streams may fill a quarter of the staging buffer (UDP_SHARE); past it their datagrams are
   * dropped while TCP streams still have the rest (SPEC.md §2.5).
   */
  canSendDatagrams(): boolean {
    return !this.closed && this.writer.canAccept(UDP_SHARE);
  }

  /**
   * True while another datagram stream (UDP flow) may open here: they take at most half of this side's stream limit,
   * the rest stays for byte streams (SPEC.md §2.5). The server opens no flow past it; the agent refuses one.
   */
  get hasDatagramRoom(): boolean {
    return this.datagramStreams < Math.max(1, Math.floor(this.opts.maxStreams / 2));
  }

  // --- internals ---

  /** A frame for a stream not in the table: late (already closed) frames are ignored, others are an error. */
  private unknownStream(streamId: number, what: string): void {
    if (streamId > this.highestStreamId) {
      this.protocolError(new TunnelError("ERR_PROTOCOL", `${what} for stream ${streamId} that was never opened`));
    }
  }
}

