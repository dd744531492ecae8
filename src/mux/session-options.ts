/**
 * What a session's role (agent or server) hands it: the settings (SessionOptions) and the callbacks (SessionEvents).
 */
import type { TunnelError } from "../errors.ts";
import type { ControlMessage } from "../protocol/control.ts";
import type { Stream } from "./stream.ts";

/**
 * The per-stream window an agent grants until the stream's target is connected (SPEC.md §2.2): what it announces
 * as `window` in its hello. The stream grows to TUNNEL_STREAM_WINDOW_BYTES by one WINDOW right after its ACK, so
 * bytes a target that is slow to accept makes the agent hold stay at this per stream.
 */
export const OPENING_WINDOW_BYTES = 64 * 1024;

/** The window an agent announces in its hello for a configured TUNNEL_STREAM_WINDOW_BYTES (see OPENING_WINDOW_BYTES). */
export function openingWindow(streamWindowBytes: number): number {
  return Math.min(OPENING_WINDOW_BYTES, streamWindowBytes);
}

/** Session settings (negotiated windows come from the handshake). */
export interface SessionOptions {
  role: "server" | "agent";
  /** Per-stream window we grant the peer (bytes) when a stream opens: the window of our handshake. */
  localWindow: number;
  /**
   * The window a stream grows to once acknowledged, by one WINDOW sent after the ACK (agent: localWindow is the
   * opening window, see OPENING_WINDOW_BYTES). Default localWindow.
   */
  openWindow?: number;
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
  /**
   * The largest a stream's receive window may grow to (TUNNEL_STREAM_WINDOW_MAX_BYTES, SPEC.md §2.2); absent or
   * not above openWindow: windows do not adapt.
   */
  windowMaxBytes?: number;
  /** Milliseconds clock for the adaptive windows (tests); default performance.now. */
  clock?: () => number;
  /**
   * Peer bytes held for local sockets plus window growth (see InboundTally), on this connection and in the whole
   * process: windows grow only within these; an agent also refuses new OPENs past them (REFUSED_STREAM). Absent:
   * no budget.
   */
  inboundMaxBytesPerConnection?: number;
  inboundMaxBytes?: number;
  /** A stream that moved no byte either way for this long is reset with IDLE_TIMEOUT; 0 or absent: never. */
  streamIdleTimeoutMs?: number;
}

/** Callbacks from a session to its role. */
export interface SessionEvents {
  /** Agent only: the server opened a stream. The callee attaches a target or resets it. */
  onOpen?(stream: Stream): void;
  /**
   * Agent only: an OPEN was refused with REFUSED_STREAM before any stream existed, at the stream limit
   * (`"stream_limit"`) or past an inbound budget (`"inbound_budget"`).
   */
  onRefused?(reason: "stream_limit" | "inbound_budget"): void;
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
  /**
   * The session stopped taking new streams (once): it began draining (either side's GOAWAY, ids exhausted) or closed,
   * whichever came first. Called as the state changes, before any stream is aborted.
   */
  onUnready?(): void;
  /** The session is closed (once). `error` is set unless it was a clean close. */
  onClose(error?: TunnelError): void;
}

/** The settings both roles' configs share that shape a session (TUNNEL_STREAM_WINDOW_BYTES etc.). */
export interface SessionSettings {
  streamWindowBytes: number;
  /** TUNNEL_STREAM_WINDOW_MAX_BYTES. */
  streamWindowMaxBytes: number;
  maxFrameBytes: number;
  maxStreamsPerConnection: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  controlQueueMaxBytes: number;
  streamIdleTimeoutMs: number;
  /** TUNNEL_INBOUND_MAX_BYTES_PER_CONNECTION, TUNNEL_INBOUND_MAX_BYTES. */
  inboundMaxBytesPerConnection: number;
  inboundMaxBytes: number;
}

/** What the peer announced in the handshake (the agent's hello, or the server's response). */
export interface PeerLimits {
  window: number;
  max_frame: number;
}

/**
 * The options of a session for `role` on a `kind` of connection, from this side's settings and the peer's limits:
 * the same for both roles, except that an aside (control) connection carries no streams and accepts CONTROL, and
 * that an agent opens streams with a small window (OPENING_WINDOW_BYTES).
 */
export function sessionOptions(role: "server" | "agent", kind: "data" | "aside", s: SessionSettings, peer: PeerLimits): SessionOptions {
  const agent = role === "agent";
  return {
    role,
    localWindow: agent ? openingWindow(s.streamWindowBytes) : s.streamWindowBytes,
    openWindow: s.streamWindowBytes,
    windowMaxBytes: s.streamWindowMaxBytes,
    inboundMaxBytesPerConnection: s.inboundMaxBytesPerConnection,
    inboundMaxBytes: s.inboundMaxBytes,
    streamIdleTimeoutMs: s.streamIdleTimeoutMs,
    peerWindow: peer.window,
    localMaxFrame: s.maxFrameBytes,
    peerMaxFrame: peer.max_frame,
    maxStreams: kind === "aside" ? 0 : s.maxStreamsPerConnection,
    heartbeatIntervalMs: s.heartbeatIntervalMs,
    heartbeatTimeoutMs: s.heartbeatTimeoutMs,
    controlQueueMaxBytes: s.controlQueueMaxBytes,
    acceptControl: kind === "aside",
  };
}
