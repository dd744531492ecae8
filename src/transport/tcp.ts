/**
 * Sockets and dialling: with transport/listener.ts, the only code that touches Bun.listen / Bun.connect. Each
 * socket carries a mutable `owner` that receives its events; handlers are shared per listener (no closure per
 * socket). Owners are swapped as a connection moves from handshake to session. Sockets are half-open capable everywhere (bun-platform.md §1.5).
 */
import type { Socket, TLSOptions } from "bun";
import { TunnelError } from "../errors.ts";
import type { ConnectionCap } from "./connection-cap.ts";
import { CERTIFICATE_CHECK_CODES } from "./certificate-codes.ts";

/** Receives the events of one socket. Methods must not throw (a throw is treated as a bug: the socket is killed). */
export interface SocketOwner {
  /** A chunk arrived. It is a fresh buffer the owner may keep views of (bun-platform.md §1.7). */
  onData(chunk: Uint8Array): void;
  /** The kernel accepted earlier bytes; write queued bytes now. */
  onDrain(): void;
  /** The peer sent FIN (half-close). */
  onEnd(): void;
  /** The socket is gone. `error` is set for a reset or failure. Called exactly once. */
  onClose(error?: Error): void;
  /**
   * TLS listener sockets only: the TLS handshake finished. `ok` false means it failed (the socket closes next).
   * With `ok` true the owner must still check `socket.authorized` when it requires a client certificate
   * (bun-platform.md §1.8). Nothing may be written before this is called: such bytes are lost.
   */
  onHandshake?(ok: boolean, error: Error | null): void;
}

/** An owner that ignores every event: for a socket that was refused or is being closed, until it is gone. */
export const IGNORING_OWNER: SocketOwner = Object.freeze({ onData() {}, onDrain() {}, onEnd() {}, onClose() {} });

/** Per-socket slot stored in `socket.data`. */
export interface SocketSlot {
  owner: SocketOwner | null;
  /** Set by a connect that timed out: the late socket is killed on open. */
  abandoned?: boolean;
  /** The cap this accepted socket holds a slot of (released when it closes). */
  cap?: ConnectionCap;
  /** A TLS connect waiting for its handshake (see {@link connect}). */
  connecting?: { handshake(s: NetSocket, ok: boolean, error: Error | null): void; closed(error?: Error): void };
}

/** A Bun TCP or TLS socket as used across Backchannel. */
export type NetSocket = Socket<SocketSlot>;

/** TLS only. Having this handler makes Bun fire `open` at TCP accept/connect instead of after the handshake. */
export function handshake(s: NetSocket, ok: boolean, error: Error | null): void {
  const connecting = s.data?.connecting;
  if (connecting) connecting.handshake(s, ok, error ?? null);
  else s.data?.owner?.onHandshake?.(ok, error ?? null);
}

/**
 * The socket handlers of a listener (`accept` set) or of client sockets (null), shared by all their sockets. With
 * `cap`, an accepted socket takes a slot first (or is closed at once, before `accept`) and gives it back on close.
 */
export function handlersFor(
  accept: ((s: NetSocket) => SocketOwner | null) | null,
  onHandlerError?: (error: Error) => void,
  cap?: ConnectionCap,
) {
  return {
    binaryType: "uint8array" as const,
    open(s: NetSocket) {
      if (s.data?.abandoned) {
        s.terminate();
        return;
      }
      s.setNoDelay(true);
      if (accept) {
        if (cap !== undefined && !cap.tryAcquire()) {
          s.terminate();
          return;
        }
        const owner = accept(s);
        if (owner === null) {
          cap?.release();
          s.terminate();
          return;
        }
        s.data = cap !== undefined ? { owner, cap } : { owner };
      }
    },
    data(s: NetSocket, chunk: Uint8Array) {
      s.data?.owner?.onData(chunk);
    },
    drain(s: NetSocket) {
      s.data?.owner?.onDrain();
    },
    end(s: NetSocket) {
      s.data?.owner?.onEnd();
    },
    close(s: NetSocket, error?: Error) {
      const held = s.data?.cap;
      if (held !== undefined) {
        s.data.cap = undefined;
        held.release();
      }
      const connecting = s.data?.connecting;
      if (connecting) {
        s.data.connecting = undefined;
        connecting.closed(error);
      }
      const owner = s.data?.owner;
      if (s.data) s.data.owner = null;
      owner?.onClose(error);
    },
    error(s: NetSocket, error: Error) {
      // A handler threw: a bug or a TLS failure. Contain it to this socket.
      const connecting = s.data?.connecting;
      if (connecting) {
        s.data.connecting = undefined;
        connecting.handshake(s, false, error); // e.g. a TLS alert from the server during the handshake
        return;
      }
      onHandlerError?.(error);
      s.terminate();
    },
    connectError() {
      // The connect promise rejects; handled by the caller.
    },
  };
}

const clientHandlers = handlersFor(null);
const tlsClientHandlers = { ...clientHandlers, handshake };

/** A check of the server's certificate: null accepts the server, a string is the reason it is refused. */
export type ServerVerifier = (socket: NetSocket) => string | null;

/**
 * TLS options for {@link connect}: Bun's, plus `verifyServer`. Without it the server must pass Bun's verification
 * (`socket.authorized`: chains to `ca` or the system roots and names `serverName`). With it, only `verifyServer`
 * decides (for a pinned certificate: SPEC.md §6); set `rejectUnauthorized: false` then, so the handshake completes
 * for a certificate no CA vouches for.
 */
export interface DialTls extends TLSOptions {
  verifyServer?: ServerVerifier;
}

/** Options for {@link connect}. */
export interface ConnectOptions {
  host: string;
  port: number;
  tls?: DialTls | undefined;
  /** Gives up after this many ms (ERR_CONNECT_TIMEOUT). */
  timeoutMs: number;
  owner: SocketOwner;
}

/**
 * Dials host:port (TCP or TLS). Resolves with the open socket, owned by `owner` from then on; with TLS only once
 * the handshake succeeded and the server was accepted (`socket.authorized`, or `tls.verifyServer`), so the caller
 * may write.
 * Rejects with TunnelError ERR_CONNECT_REFUSED (refused, unreachable, closed during the TLS handshake), ERR_TLS
 * (the TLS handshake failed: the message has the reason, e.g. `CERT_HAS_EXPIRED`) or ERR_CONNECT_TIMEOUT
 * (which covers the TLS handshake). The owner receives no events unless the promise resolved.
 */
export function connect(opts: ConnectOptions): Promise<NetSocket> {
  return new Promise<NetSocket>((resolve, reject) => {
    const { verifyServer, ...tls } = opts.tls ?? {};
    const dial = new Dial(opts, resolve, reject, verifyServer ?? null);
    Bun.connect<SocketSlot>({
      hostname: opts.host,
      port: opts.port,
      allowHalfOpen: true,
      data: dial.slot,
      ...(opts.tls ? { tls } : {}),
      socket: opts.tls ? tlsClientHandlers : clientHandlers,
    }).then(
      (s) => dial.connected(s),
      (e: unknown) => dial.failed(e),
    );
  });
}

/**
 * Starts TLS on a connected plain socket (after an HTTP CONNECT through a proxy), with {@link connect}'s checks and
 * outcomes: resolves with the TLS socket once the server was accepted; the raw socket's events are ignored from now.
 */
export function startTls(raw: NetSocket, opts: ConnectOptions & { tls: DialTls }): Promise<NetSocket> {
  return new Promise<NetSocket>((resolve, reject) => {
    const { verifyServer, ...tls } = opts.tls;
    const dial = new Dial(opts, resolve, reject, verifyServer ?? null);
    if (raw.data) raw.data.owner = null; // the ciphertext still reaches the raw socket's handlers (bun-platform.md §1.8)
    try {
      const [, secure] = raw.upgradeTLS<SocketSlot>({ tls: { ...tls, serverName: tls.serverName ?? opts.host }, socket: tlsClientHandlers, data: dial.slot });
      dial.connected(secure);
    } catch (e) {
      dial.failed(e);
    }
  });
}

/** One {@link connect} in progress: settles its promise exactly once (connected, refused, TLS failure, timeout). */
class Dial {
  readonly slot: SocketSlot = { owner: null };
  private settled = false;
  private socket: NetSocket | null = null;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly opts: ConnectOptions,
    private readonly resolve: (s: NetSocket) => void,
    private readonly reject: (e: TunnelError) => void,
    private readonly verifyServer: ServerVerifier | null,
  ) {
    this.timer = setTimeout(() => this.timedOut(), opts.timeoutMs);
    // Bun resolves Bun.connect before the TLS handshake and would even fire `open` for a server that fails
    // verification (bun-platform.md §1.8): with TLS the handshake event decides.
    if (opts.tls) this.slot.connecting = { handshake: (s, ok, error) => this.tlsDone(s, ok, error), closed: (error) => this.tlsClosed(error) };
  }

  private get where(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  /** Bun.connect resolved: a plain socket is ours now; a TLS one waits for its handshake event. */
  connected(s: NetSocket): void {
    this.socket = s;
    if (this.opts.tls) {
      // The handshake handler (or `closed`) settles; a socket that timed out meanwhile is killed.
      if (this.settled && this.slot.owner === null) s.terminate();
      return;
    }
    clearTimeout(this.timer);
    if (this.settled || s.readyState !== 1) {
      s.terminate();
      if (!this.settled) this.fail(new TunnelError("ERR_CONNECT_REFUSED", `connection to ${this.where} closed at once`));
      return;
    }
    this.succeed(s);
  }

  /** Bun.connect rejected (refused, unreachable). */
  failed(e: unknown): void {
    clearTimeout(this.timer);
    if (this.settled) return;
    const err = e as Error & { code?: string };
    this.fail(new TunnelError("ERR_CONNECT_REFUSED", `connect to ${this.where} failed: ${err.code ?? err.message}`, { cause: e }));
  }

  private tlsDone(s: NetSocket, ok: boolean, error: Error | null): void {
    this.slot.connecting = undefined;
    if (this.settled) return void s.terminate();
    clearTimeout(this.timer);
    const refused = this.refusal(s, ok, error);
    if (refused !== null) {
      s.terminate();
      this.fail(new TunnelError("ERR_TLS", `TLS with ${this.where} failed: ${refused}`, { cause: error ?? undefined }));
      return;
    }
    this.succeed(s);
  }

  /** Why the finished TLS handshake does not admit the server, or null if it does. */
  private refusal(s: NetSocket, ok: boolean, error: Error | null): string | null {
    const e = error as (Error & { code?: string }) | null;
    const reason = e ? `${e.code ?? "TLS"}: ${e.message}` : "server certificate not verified";
    if (this.verifyServer === null) return ok && s.authorized ? null : reason;
    // With rejectUnauthorized false Bun still reports ok=false when the certificate does not name the host, though
    // the TLS session is up; the error is then the certificate check's, which verifyServer replaces. Any other
    // error (an alert, a protocol version, a bad handshake signature) is a failed TLS handshake.
    if (!ok && !CERTIFICATE_CHECK_CODES.has(e?.code ?? "")) return reason;
    try {
      return this.verifyServer(s);
    } catch (thrown) {
      return `server certificate check failed: ${(thrown as Error).message}`; // fail closed
    }
  }

  private tlsClosed(error?: Error): void {
    if (this.settled) return;
    clearTimeout(this.timer);
    const e = error as (Error & { code?: string }) | undefined;
    const why = e ? `: ${e.code ?? e.message}` : "";
    this.fail(new TunnelError("ERR_CONNECT_REFUSED", `connection to ${this.where} closed during the TLS handshake${why}`, { cause: e }));
  }

  private timedOut(): void {
    if (this.settled) return;
    this.slot.abandoned = true;
    this.slot.connecting = undefined;
    this.socket?.terminate();
    this.fail(new TunnelError("ERR_CONNECT_TIMEOUT", `connect to ${this.where} timed out`));
  }

  private succeed(s: NetSocket): void {
    this.settled = true;
    this.slot.owner = this.opts.owner;
    this.resolve(s);
  }

  private fail(e: TunnelError): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(e);
  }
}
