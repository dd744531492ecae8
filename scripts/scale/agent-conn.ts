/**
 * One synthetic agent data connection, as SPEC.md describes an agent's side (not the agent's code): it sends its
 * ConnectionInitInfo, reads the response, then answers PINGs with PONGs and serves the server's streams as an echo
 * service: every OPEN for a known service is ACKed at once, every DATA byte is sent back on the same stream within
 * the credit the server granted, and the swarm's own window is returned (WINDOW) once the bytes went back. FIN is
 * answered with FIN once the echo is out; RST forgets the stream. A frame the spec forbids fails the connection.
 *
 * Transport-free: bytes come in through {@link AgentConn.feed} and leave through `write` (once per fed chunk), so
 * the unit tests (test/scripts/scale-agent-conn.test.ts) drive it without sockets.
 */
import {
  encodeFrame,
  encodeHello,
  encodeU32Frame,
  FrameReader,
  FrameType,
  ResponseReader,
  Status,
  WireCode,
  WireError,
  type Frame,
  type Hello,
  type Open,
  type Response,
} from "./frames.ts";

const MAX_WINDOW = 0x7fffffff;

/** What the connection tells its owner. */
export interface ConnEvents {
  /** Bytes for the socket (one call per fed chunk at most, plus the hello). */
  write(bytes: Uint8Array): void;
  /** Status 1: the connection is registered. */
  registered(r: Response): void;
  /** Any other status (SERVER_BUSY carries retryAfterMs); the server closes the connection. */
  refused(r: Response): void;
  /** The server sent GOAWAY: it opens no more streams here. */
  goaway(): void;
  /** The server broke the protocol: the owner closes the socket. */
  failed(e: WireError): void;
}

/** The echo state of one stream. */
interface EchoStream {
  /** Bytes the server may still send before we return credit. */
  recvWindow: number;
  /** Bytes we may still send (the server's credit). */
  credit: number;
  /** Received bytes not yet echoed. */
  queue: Uint8Array[];
  peerFin: boolean;
}

/** A synthetic agent data connection (handshake, liveness, echo streams). */
export class AgentConn {
  state: "handshaking" | "open" | "refused" | "failed" = "handshaking";
  /** The server's response once it arrived. */
  response: Response | null = null;
  goneAway = false;
  /** Payload bytes echoed back over the connection's life. */
  echoedBytes = 0;
  streamsOpened = 0;
  private readonly responses = new ResponseReader();
  private frames: FrameReader | null = null;
  private readonly streams = new Map<number, EchoStream>();
  private lastId = 0;
  private out: Uint8Array[] = [];

  constructor(
    private readonly hello: Hello,
    private readonly services: ReadonlySet<string>,
    private readonly ev: ConnEvents,
  ) {}

  /** Writes the ConnectionInitInfo (call once the transport is up, after TLS). */
  start(): void {
    this.ev.write(encodeHello(this.hello));
  }

  /** Streams open now. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Bytes received from the server and not yet echoed, over all streams. */
  get queuedBytes(): number {
    let n = 0;
    for (const s of this.streams.values()) for (const q of s.queue) n += q.length;
    return n;
  }

  /** Takes bytes from the socket. Never throws: a protocol failure ends in `failed`. */
  feed(chunk: Uint8Array): void {
    if (this.state === "refused" || this.state === "failed") return;
    try {
      let bytes = chunk;
      if (this.state === "handshaking") {
        const got = this.responses.push(chunk);
        if (got === null) return;
        this.response = got.response;
        if (got.response.status !== Status.SUCCESS) {
          this.state = "refused";
          this.ev.refused(got.response);
          return;
        }
        this.state = "open";
        this.frames = new FrameReader(this.hello.maxFrame);
        this.ev.registered(got.response);
        bytes = got.rest;
      }
      if (bytes.length > 0) for (const f of (this.frames as FrameReader).push(bytes)) this.handle(f);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.state = "failed";
      this.out = [];
      this.ev.failed(e);
      return;
    }
    this.flushOut();
  }

  private send(frame: Uint8Array): void {
    this.out.push(frame);
  }

  private flushOut(): void {
    if (this.out.length === 0) return;
    const frames = this.out;
    this.out = [];
    if (frames.length === 1) {
      this.ev.write(frames[0] as Uint8Array);
      return;
    }
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of frames) {
      all.set(f, at);
      at += f.length;
    }
    this.ev.write(all);
  }

  private handle(f: Frame): void {
    switch (f.type) {
      case FrameType.PING:
        return this.send(encodeFrame(FrameType.PONG, 0, f.payload));
      case FrameType.PONG:
        return; // the swarm sends no PINGs; an unsolicited PONG is harmless
      case FrameType.OPEN:
        return this.handleOpen(f);
      case FrameType.DATA:
        return this.handleData(f);
      case FrameType.FIN:
        return this.handleFin(f);
      case FrameType.RST:
        return void (this.stream(f.streamId) && this.streams.delete(f.streamId));
      case FrameType.WINDOW:
        return this.handleWindow(f);
      case FrameType.GOAWAY:
        return this.handleGoAway();
      case FrameType.ACK:
        throw new WireError("ERR_PROTOCOL", "ACK from the server (only agents send ACK)");
      default:
        throw new WireError("ERR_FRAME_PAYLOAD", "CONTROL on a data connection");
    }
  }

  /** The stream, or null for a late frame of a stream that ended; an id never opened is a protocol error. */
  private stream(id: number): EchoStream | null {
    const s = this.streams.get(id);
    if (s) return s;
    if (id > this.lastId) throw new WireError("ERR_PROTOCOL", `frame for stream ${id}, never opened`);
    return null;
  }

  private handleOpen(f: Frame): void {
    const open = f.open as Open;
    if (f.streamId <= this.lastId) throw new WireError("ERR_PROTOCOL", `OPEN of stream ${f.streamId} after ${this.lastId}`);
    if (this.goneAway) throw new WireError("ERR_PROTOCOL", "OPEN after GOAWAY");
    this.lastId = f.streamId;
    if (!this.services.has(open.service) || (f.flags & 1) !== 0) {
      this.send(encodeU32Frame(FrameType.RST, f.streamId, WireCode.UNKNOWN_SERVICE));
      return;
    }
    this.streamsOpened++;
    this.streams.set(f.streamId, { recvWindow: this.hello.window, credit: (this.response as Response).window, queue: [], peerFin: false });
    this.send(encodeFrame(FrameType.ACK, f.streamId));
  }

  private reset(id: number, code: number): void {
    this.streams.delete(id);
    this.send(encodeU32Frame(FrameType.RST, id, code));
  }

  private handleData(f: Frame): void {
    const s = this.stream(f.streamId);
    if (s === null) return;
    if (s.peerFin) return this.reset(f.streamId, WireCode.STREAM_CLOSED);
    if (f.payload.length > s.recvWindow) return this.reset(f.streamId, WireCode.FLOW_CONTROL_ERROR);
    s.recvWindow -= f.payload.length;
    if (f.payload.length > 0) s.queue.push(f.payload);
    this.echo(f.streamId, s);
  }

  private handleFin(f: Frame): void {
    const s = this.stream(f.streamId);
    if (s === null) return;
    s.peerFin = true;
    this.echo(f.streamId, s);
  }

  private handleWindow(f: Frame): void {
    const inc = new DataView(f.payload.buffer, f.payload.byteOffset, 4).getUint32(0);
    const s = this.stream(f.streamId);
    if (s === null) return;
    if (s.credit + inc > MAX_WINDOW) return this.reset(f.streamId, WireCode.FLOW_CONTROL_ERROR);
    s.credit += inc;
    this.echo(f.streamId, s);
  }

  private handleGoAway(): void {
    if (this.goneAway) return;
    this.goneAway = true;
    this.ev.goaway();
  }

  /** Sends back what the credit allows (DATA of at most the server's max_frame), returns our window, FIN when done. */
  private echo(id: number, s: EchoStream): void {
    const maxFrame = (this.response as Response).maxFrame;
    let sent = 0;
    while (s.queue.length > 0 && s.credit > 0) {
      const head = s.queue[0] as Uint8Array;
      const n = Math.min(head.length, s.credit, maxFrame);
      this.send(encodeFrame(FrameType.DATA, id, head.subarray(0, n)));
      if (n === head.length) s.queue.shift();
      else s.queue[0] = head.subarray(n);
      s.credit -= n;
      sent += n;
    }
    if (sent > 0) {
      this.echoedBytes += sent;
      s.recvWindow += sent;
      this.send(encodeU32Frame(FrameType.WINDOW, id, sent));
    }
    if (s.peerFin && s.queue.length === 0) {
      this.send(encodeFrame(FrameType.FIN, id));
      this.streams.delete(id); // both halves done
    }
  }
}
