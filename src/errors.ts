/**
 * The one error type of Backchannel. Every failure that crosses a module boundary is a `TunnelError` with a
 * documented `ERR_*` code (SPEC.md §Errors). Peers are told codes (numbers on the wire), never messages.
 */
import { appendFileSync } from "node:fs";

/** Every error code, with its meaning. SPEC.md §Errors lists the same table. */
export const ErrorCodes = {
  // configuration and startup
  ERR_CONFIG: "invalid configuration",
  ERR_TLS_CONFIG: "TLS material missing or unreadable",
  ERR_LISTEN: "could not listen on an address",
  // handshake (MOSN-compatible frame)
  ERR_HANDSHAKE_MAGIC: "handshake frame does not start with 0x20 0x88",
  ERR_HANDSHAKE_VERSION: "handshake frame version is not 0x01",
  ERR_HANDSHAKE_FLAG: "handshake frame flag is unknown or not expected here",
  ERR_HANDSHAKE_TYPE: "handshake frame type bytes do not match the flag",
  ERR_HANDSHAKE_TOO_LARGE: "handshake body longer than the limit",
  ERR_HANDSHAKE_JSON: "handshake body is not valid UTF-8 JSON",
  ERR_HANDSHAKE_SHAPE: "handshake JSON does not have the expected shape",
  ERR_HANDSHAKE_TIMEOUT: "handshake did not complete before the deadline",
  ERR_HANDSHAKE_REFUSED: "the server answered the handshake with a non-success status",
  ERR_UNSUPPORTED_VERSION: "the agent announces no stream protocol version this server speaks",
  ERR_HANDSHAKE_CLOSED: "connection closed before the handshake completed",
  // stream protocol
  ERR_FRAME_TYPE: "unknown frame type",
  ERR_FRAME_FLAGS: "frame flags not zero",
  ERR_FRAME_SIZE: "frame length over the limit or wrong for its type",
  ERR_FRAME_STREAM_ID: "stream id not allowed for this frame type",
  ERR_FRAME_PAYLOAD: "frame payload malformed",
  ERR_PROTOCOL: "frame not allowed in the current state",
  ERR_KEEPALIVE_TIMEOUT: "peer silent past the liveness timeout",
  ERR_CONTROL_FLOOD: "peer queued too many control replies without reading",
  ERR_SESSION_CLOSED: "connection closed",
  // roles
  ERR_UNKNOWN_SERVICE: "service not in the agent's TUNNEL_SERVICES",
  ERR_SERVICE_PROTOCOL: "a UDP flow for a TCP service, or a TCP stream for a UDP service",
  ERR_CONNECT_REFUSED: "target refused the connection",
  ERR_CONNECT_TIMEOUT: "target did not accept the connection in time",
  ERR_NO_HOST: "no live, non-draining agent connection in the cluster",
  ERR_AUTH: "authentication failed",
  ERR_TLS: "TLS verification failed",
  ERR_WEBSOCKET: "WebSocket upgrade refused or the peer broke the WebSocket binding (text or oversized message, bad framing)",
  ERR_PROXY: "the HTTP CONNECT proxy refused the tunnel or did not answer as a proxy",
  ERR_PROXY_AUTH: "the HTTP CONNECT proxy refused the proxy credentials (407)",
  ERR_INTERNAL: "internal error (a bug)",
} as const;

/**
 * Test hook (not a TUNNEL_ variable): with BACKCHANNEL_TRACE_ERRORS=<file>, every process appends each code it
 * raises to that file, once per process, so CI can check that the test suite reaches every code
 * (scripts/check-error-codes.ts).
 */
const tracePath = process.env.BACKCHANNEL_TRACE_ERRORS;
const traced = new Set<string>();

function trace(code: string): void {
  if (tracePath === undefined || tracePath === "" || traced.has(code)) return;
  traced.add(code);
  try {
    appendFileSync(tracePath, `${code}\n`);
  } catch {
    // a trace that cannot be written is no error of the traced program
  }
}

/** A documented error code. */
export type ErrorCode = keyof typeof ErrorCodes;

/** The single error class. `code` is stable and documented; `message` is for operators' logs only. */
export class TunnelError extends Error {
  override readonly name = "TunnelError";
  /** Stable, documented code (see {@link ErrorCodes}). */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code], options);
    this.code = code;
    trace(code);
  }
}

/**
 * A code for a log line about a failure that needs no error object (a refused visitor, an unknown service): returns
 * `code` and counts as raising it for BACKCHANNEL_TRACE_ERRORS. Allocates nothing.
 */
export function logCode(code: ErrorCode): ErrorCode {
  trace(code);
  return code;
}

/** True if `e` is a TunnelError (optionally with the given code). */
export function isTunnelError(e: unknown, code?: ErrorCode): e is TunnelError {
  return e instanceof TunnelError && (code === undefined || e.code === code);
}
