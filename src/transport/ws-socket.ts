/**
 * A WebSocket connection (SPEC.md §8) presented as the socket the rest of Backchannel uses ({@link TunnelSocket}):
 * `write` sends the bytes as binary messages and returns how many it took (a short count → wait for `onDrain`, as
 * with a TCP socket), and the owner's `onData` gets the payload of binary messages as it arrives, in place, with no
 * message boundaries. It owns the raw TCP/TLS socket below it. Violations of the binding (a text message, an
 * oversized message, bad framing) close the connection with their WebSocket close code and reach the owner as
 * `onClose(ERR_WEBSOCKET)`.
 */
import { getRandomValues } from "node:crypto";
import { TunnelError } from "../errors.ts";
import { WS_SEND_MESSAGE_BYTES, WsClose, WsDecoder, WsOp, closePayload, encodeFrame, type EncodedFrame, type WsSink } from "../protocol/ws-frame.ts";
import { chunkViews, releaseChunk } from "./read-buffer.ts";
import type { NetSocket, SocketOwner, SocketSlot } from "./tcp.ts";

/**
 * The socket interface of agent connections: a Bun TCP/TLS socket ({@link NetSocket}) or a {@link WsSocket}.
 * `data.owner` receives its events, as for every socket of transport/tcp.ts.
 */
export interface TunnelSocket {
  data: SocketSlot;
  /** The peer's address (over WebSocket behind a trusted proxy: the client's, from X-Forwarded-For). */
  readonly remoteAddress: string;
  /** TLS: the peer's certificate verified (see tls.ts). */
  readonly authorized: boolean;
  /** Bytes the transport took (≤ length; 0 when blocked: wait for the owner's onDrain), or -1 once closed. */
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  /** Closes after what was written (WebSocket: a Close frame first). */
  end(): void;
  /** Stops sending (FIN; WebSocket: a Close frame) and keeps reading until the peer closes. */
  shutdown(halfClose?: boolean): void;
  /** Closes at once (RST). */
  terminate(): void;
  getPeerCertificate?(): unknown;
  exportKeyingMaterial?(length: number, label: string, context: Buffer): Buffer;
  /** Set on a WebSocket connection (channel bindings differ: SPEC.md §1.7). */
  readonly transport?: "websocket";
}

/** A linger for a peer that never answers our Close: the connection is reset after this long. */
const CLOSE_LINGER_MS = 5_000;

/** A WebSocket connection over a connected raw socket, after the upgrade. */
export class WsSocket implements TunnelSocket, SocketOwner, WsSink {
  data: SocketSlot = { owner: null };
  readonly transport = "websocket" as const;
  private readonly decoder: WsDecoder;
  /** The tail of a frame the raw socket did not take yet; writes wait until it is gone. */
  private queued: Uint8Array | null = null;
  /** What to do to the raw socket once `queued` is written: nothing, FIN (shutdown) or close (end). */
  private after: "none" | "shutdown" | "end" = "none";
  private closeSent = false;
  private ended = false;
  private gone = false;
  private linger: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly raw: NetSocket,
    private readonly role: "client" | "server",
    maxMessageBytes: number,
    readonly remoteAddress: string,
  ) {
    this.decoder = new WsDecoder({ expectMasked: role === "server", maxMessageBytes });
  }

  get authorized(): boolean {
    return this.raw.authorized;
  }

  getPeerCertificate(): unknown {
    return this.raw.getPeerCertificate?.();
  }

  write(data: Uint8Array, byteOffset = 0, byteLength = data.byteLength - byteOffset): number {
    if (this.gone || this.closeSent) return -1;
    if (this.queued !== null) return 0;
    let done = 0;
    while (done < byteLength) {
      const n = Math.min(WS_SEND_MESSAGE_BYTES, byteLength - done);
      const frame = encodeFrame(WsOp.BINARY, data.subarray(byteOffset + done, byteOffset + done + n), this.maskKey());
      done += n;
      if (!this.send(frame)) break;
    }
    return done;
  }

  end(): void {
    this.close(WsClose.NORMAL, "", "end");
  }

  shutdown(): void {
    this.close(WsClose.NORMAL, "", "shutdown");
  }

  terminate(): void {
    this.raw.terminate();
  }

  // --- events of the raw socket (this is its owner) ---

  onData(chunk: Uint8Array): void {
    if (this.gone) return;
    const kept = chunkViews.kept;
    this.decoder.push(chunk, this);
    // The owner got views of payload (a Session releases only whole chunks); if none was kept, the read's memory
    // goes back now instead of at the next collection (read-buffer.ts).
    if (chunkViews.kept === kept) releaseChunk(chunk);
  }

  onDrain(): void {
    if (this.queued === null) return;
    const q = this.queued;
    const n = this.raw.write(q);
    if (n < q.byteLength) {
      if (n > 0) this.queued = q.subarray(n);
      return;
    }
    this.queued = null;
    this.finish();
    if (!this.closeSent) this.data.owner?.onDrain();
  }

  onEnd(): void {
    this.peerEnded();
  }

  onClose(error?: Error): void {
    if (this.gone) return;
    this.gone = true;
    if (this.linger !== null) clearTimeout(this.linger);
    const owner = this.data.owner;
    this.data.owner = null;
    owner?.onClose(error);
  }

  // --- WsSink: what the decoder found ---

  onBinary(bytes: Uint8Array): void {
    if (!this.ended) this.data.owner?.onData(bytes);
  }

  onControl(opcode: number, payload: Uint8Array): void {
    if (opcode === WsOp.PING) {
      if (!this.closeSent && this.queued === null) this.send(encodeFrame(WsOp.PONG, payload, this.maskKey()));
    } else if (opcode === WsOp.CLOSE) {
      // The peer sends nothing more (RFC 6455 §5.5.1): answer once everything of ours was sent, as with a FIN.
      this.peerEnded();
    }
  }

  onViolation(closeCode: number, reason: string): void {
    const owner = this.data.owner;
    this.data.owner = null;
    this.close(closeCode, reason, "end");
    owner?.onClose(new TunnelError("ERR_WEBSOCKET", `WebSocket closed with ${closeCode}: ${reason}`));
  }

  private peerEnded(): void {
    if (this.ended) return;
    this.ended = true;
    this.data.owner?.onEnd();
  }

  /** Sends a Close frame (once), then FIN or close once everything queued is written; resets after a linger. */
  private close(code: number, reason: string, then: "shutdown" | "end"): void {
    if (this.gone) return;
    if (!this.closeSent) {
      this.closeSent = true;
      if (this.queued === null) this.send(encodeFrame(WsOp.CLOSE, closePayload(code, reason), this.maskKey()));
      else {
        const f = encodeFrame(WsOp.CLOSE, closePayload(code, reason), this.maskKey());
        const tail = new Uint8Array(this.queued.byteLength + f.length);
        tail.set(this.queued);
        tail.set(f.buf.subarray(f.offset, f.offset + f.length), this.queued.byteLength);
        this.queued = tail;
      }
      this.linger = setTimeout(() => this.raw.terminate(), CLOSE_LINGER_MS);
    }
    if (then === "end" || this.after === "none") this.after = then;
    this.finish();
  }

  /** Once nothing is queued: the FIN or close asked for. */
  private finish(): void {
    if (this.queued !== null || this.after === "none") return;
    const what = this.after;
    this.after = "none";
    if (what === "end") this.raw.end();
    else this.raw.shutdown();
  }

  /** Writes one frame; false if the raw socket did not take all of it (the rest waits for drain). */
  private send(f: EncodedFrame): boolean {
    const n = this.raw.write(f.buf, f.offset, f.length);
    if (n === f.length) {
      releaseChunk(f.buf); // the kernel has the bytes: give the frame's memory back now (read-buffer.ts)
      return true;
    }
    this.queued = f.buf.subarray(f.offset + Math.max(0, n), f.offset + f.length);
    return false;
  }

  private maskKey(): Uint8Array | null {
    return this.role === "client" ? getRandomValues(new Uint8Array(4)) : null;
  }
}
