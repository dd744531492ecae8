/** Wire constants of the Backchannel protocol (SPEC.md §1, §2, §5.2): frame types, codes, limits. Pure. */

/** Stream frame types (SPEC.md §2), the first header byte. */
export const FrameType = {
  DATA: 0,
  OPEN: 1,
  ACK: 2,
  FIN: 3,
  RST: 4,
  WINDOW: 5,
  PING: 6,
  PONG: 7,
  GOAWAY: 8,
  CONTROL: 9,
} as const;
/** OPEN's one legal flag (SPEC.md §2, §2.5): the stream is a datagram flow (UDP), its DATA length-prefixed datagrams. */
export const OPEN_FLAG_DATAGRAM = 0x01;
/** Largest UDP payload a datagram flow carries, bytes (65,535 − 8 UDP − 20 IPv4 header). */
export const MAX_DATAGRAM_BYTES = 65507;
/** Bytes of the length prefix in front of each datagram on a datagram flow (uint16). */
export const DATAGRAM_PREFIX_BYTES = 2;
/** A stream frame type number. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Error codes carried by RST and GOAWAY (SPEC.md §5.2). A decoder accepts any uint32; unknown ones are the mux's business. */
export const WireCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 4,
  FRAME_SIZE_ERROR: 5,
  REFUSED_STREAM: 6,
  CANCEL: 7,
  UNKNOWN_SERVICE: 8,
  CONNECT_REFUSED: 9,
  CONNECT_TIMEOUT: 10,
  TARGET_ERROR: 11,
  SHUTTING_DOWN: 12,
  STREAM_IDS_EXHAUSTED: 13,
  KEEPALIVE_TIMEOUT: 14,
  ENHANCE_YOUR_CALM: 15,
  IDLE_TIMEOUT: 16,
  PROTOCOL_MISMATCH: 17,
} as const;
/** A known wire code number. */
export type WireCode = (typeof WireCode)[keyof typeof WireCode];

const wireCodeNames: readonly string[] = Object.keys(WireCode);

/** Name of a wire code for logs: `"CANCEL"` for 7, `"UNKNOWN(99)"` for a code outside SPEC.md §5.2. Never throws. */
export function wireCodeName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < wireCodeNames.length
    ? (wireCodeNames[code] as string)
    : `UNKNOWN(${code})`;
}

/** `status` values of ConnectionInitResponse (SPEC.md §1.2); 0..4 are MOSN's, 16..18 are Backchannel's. */
export const HandshakeStatus = {
  UNKNOWN_FAILED: 0,
  SUCCESS: 1,
  AUTH_FAILED: 2,
  VALIDATOR_NOT_FOUND: 3,
  CLUSTER_NOT_EXIST: 4,
  UNSUPPORTED_VERSION: 16,
  SERVER_BUSY: 17,
  MALFORMED: 18,
} as const;
/** A known handshake status number. */
export type HandshakeStatus = (typeof HandshakeStatus)[keyof typeof HandshakeStatus];

const statusNames = new Map<number, string>(Object.entries(HandshakeStatus).map(([name, value]) => [value, name]));

/** Name of a handshake status for logs and labels: `"AUTH_FAILED"` for 2, `"UNKNOWN"` for a status not in §1.2. */
export function handshakeStatusName(status: number): string {
  return statusNames.get(status) ?? "UNKNOWN";
}

/** Handshake frame flag byte (offset 3): which JSON body follows (SPEC.md §1). */
export const HandshakeFlag = {
  INIT_INFO: 1,
  INIT_RESPONSE: 2,
  GRACEFUL_CLOSE: 3,
} as const;
/** A handshake flag number. */
export type HandshakeFlag = (typeof HandshakeFlag)[keyof typeof HandshakeFlag];

/** Handshake magic, bytes 0..1 of a handshake frame. */
export const HANDSHAKE_MAGIC_0 = 0x20;
/** Second magic byte. */
export const HANDSHAKE_MAGIC_1 = 0x88;
/** Handshake frame version byte (offset 2). */
export const HANDSHAKE_VERSION = 1;
/** Handshake header size in bytes (magic, version, flag, type, length). */
export const HANDSHAKE_HEADER_BYTES = 8;
/** Default limit on a handshake JSON body, bytes. */
export const DEFAULT_HANDSHAKE_MAX_BODY_BYTES = 16384;
/** Hard ceiling on a handshake body (uint16 length field); larger limits are clamped to it. */
export const HANDSHAKE_MAX_BODY_LIMIT = 65535;
/** Deepest JSON nesting a handshake body may have (the top-level object is depth 1). */
export const HANDSHAKE_MAX_JSON_DEPTH = 8;

/** Stream frame header size in bytes: type, flags, stream id, length. */
export const FRAME_HEADER_BYTES = 10;
/** Default largest DATA payload a side accepts, bytes (advertised as `max_frame`). */
export const DEFAULT_MAX_FRAME_BYTES = 262144;
/** Smallest `max_frame` a side may advertise, bytes. */
export const MIN_MAX_FRAME_BYTES = 16384;
/** Largest `max_frame` a side may advertise, bytes; also the encoder's hard cap on a DATA payload. */
export const MAX_MAX_FRAME_BYTES = 16777216;
/** Default initial per-stream receive window, bytes (TUNNEL_STREAM_WINDOW_BYTES). */
export const DEFAULT_WINDOW_BYTES = 2097152;
/** Default bound on replies a peer may make a connection stage while it does not read (TUNNEL_CONTROL_QUEUE_MAX_BYTES, §2.4). */
export const DEFAULT_CONTROL_QUEUE_MAX_BYTES = 262144;
/** Largest window (and WINDOW increment), bytes. */
export const MAX_WINDOW_BYTES = 2 ** 31 - 1;
/** Largest stream id; ids are 1..MAX_STREAM_ID. */
export const MAX_STREAM_ID = 2 ** 31 - 1;
/** Stream protocol version spoken by this code (`extra.backchannel.version`). */
export const STREAM_PROTOCOL_VERSION = 1;
/** Longest service name in an OPEN payload, bytes. */
export const MAX_SERVICE_NAME_BYTES = 255;
/** Longest address text in an OPEN payload, bytes (an IPv6 text with an embedded IPv4 fits). */
export const MAX_ADDRESS_TEXT_BYTES = 45;
/** Smallest OPEN payload: 1-byte service, empty addresses. */
export const MIN_OPEN_PAYLOAD_BYTES = 1 + 1 + 1 + 0 + 2 + 1 + 0 + 2;
/** Largest OPEN payload, bytes: the biggest legal non-DATA payload. */
export const MAX_OPEN_PAYLOAD_BYTES =
  1 + MAX_SERVICE_NAME_BYTES + 1 + MAX_ADDRESS_TEXT_BYTES + 2 + 1 + MAX_ADDRESS_TEXT_BYTES + 2;
/** Largest CONTROL payload (aside connections, SPEC.md §4), bytes. */
export const MAX_CONTROL_MESSAGE_BYTES = 16384;
/** Smallest CONTROL payload (`{}`), bytes. */
export const MIN_CONTROL_MESSAGE_BYTES = 2;
/** Biggest legal non-DATA payload, bytes (= CONTROL's maximum). Bounds the frame decoder's buffering. */
export const MAX_CONTROL_PAYLOAD_BYTES = Math.max(MAX_OPEN_PAYLOAD_BYTES, MAX_CONTROL_MESSAGE_BYTES);
/** Size of a PING/PONG opaque payload, bytes. */
export const PING_PAYLOAD_BYTES = 8;
