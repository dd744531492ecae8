/**
 * The only code that touches Bun.listen / Bun.connect. Each socket carries a mutable `owner` that receives its
 * events; handlers are shared per listener (no closure per socket). Owners are swapped as a connection moves
 * from handshake to session. Sockets are half-open capable everywhere (bun-platform.md §1.5).
 */
import type { Socket, TCPSocketListener, TLSOptions } from "bun";
import { TunnelError } from "../errors.ts";

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
}

/** Per-socket slot stored in `socket.data`. */
export interface SocketSlot {
  owner: SocketOwner | null;
  /** Set by a connect that timed out: the late socket is killed on open. */
  abandoned?: boolean;
}

/** A Bun TCP or TLS socket as used across Backchannel. */
export type NetSocket = Socket<SocketSlot>;

/** Hooks for a listener: `accept` returns the owner of a new socket, or null to refuse (socket is closed). */
export interface ListenOptions {
  host: string;
  port: number;
  tls?: TLSOptions | undefined;
  accept(socket: NetSocket): SocketOwner | null;
  /** Called when a handler threw (our bug) before the socket is terminated. */
  onHandlerError?(error: Error): void;
}

/** A bound listener. */
export interface Listener {
  readonly port: number;
  readonly host: string;
  /** Stops accepting; `closeActive` also closes the accepted sockets. */
  stop(closeActive?: boolean): void;
}

function handlersFor(
  accept: ((s: NetSocket) => SocketOwner | null) | null,
  onHandlerError?: (error: Error) => void,
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
        const owner = accept(s);
        if (owner === null) {
          s.terminate();
          return;
        }
        s.data = { owner };
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
      const owner = s.data?.owner;
      if (s.data) s.data.owner = null;
      owner?.onClose(error);
    },
    error(s: NetSocket, error: Error) {
      // A handler threw: a bug or a TLS failure. Contain it to this socket.
      onHandlerError?.(error);
      s.terminate();
    },
    connectError() {
      // The connect promise rejects; handled by the caller.
    },
  };
}

/** Binds a listener. Throws TunnelError ERR_LISTEN if the address cannot be bound. */
export function listen(opts: ListenOptions): Listener {
  let l: TCPSocketListener<SocketSlot>;
  try {
    l = Bun.listen<SocketSlot>({
      hostname: opts.host,
      port: opts.port,
      allowHalfOpen: true,
      ...(opts.tls ? { tls: opts.tls } : {}),
      socket: handlersFor(opts.accept, opts.onHandlerError),
    });
  } catch (e) {
    throw new TunnelError("ERR_LISTEN", `cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return {
    port: l.port,
    host: opts.host,
    stop(closeActive = false) {
      l.stop(closeActive);
    },
  };
}

const clientHandlers = handlersFor(null);

/** Options for {@link connect}. */
export interface ConnectOptions {
  host: string;
  port: number;
  tls?: TLSOptions | undefined;
  /** Gives up after this many ms (ERR_CONNECT_TIMEOUT). */
  timeoutMs: number;
  owner: SocketOwner;
}

/**
 * Dials host:port (TCP or TLS). Resolves with the open socket, owned by `owner` from then on.
 * Rejects with TunnelError ERR_CONNECT_REFUSED (refused, unreachable, TLS verification failed: `cause` tells)
 * or ERR_CONNECT_TIMEOUT. The owner receives no events unless the promise resolved.
 */
export function connect(opts: ConnectOptions): Promise<NetSocket> {
  const slot: SocketSlot = { owner: null };
  return new Promise<NetSocket>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      slot.abandoned = true;
      reject(new TunnelError("ERR_CONNECT_TIMEOUT", `connect to ${opts.host}:${opts.port} timed out`));
    }, opts.timeoutMs);
    Bun.connect<SocketSlot>({
      hostname: opts.host,
      port: opts.port,
      allowHalfOpen: true,
      data: slot,
      ...(opts.tls ? { tls: opts.tls } : {}),
      socket: clientHandlers,
    }).then(
      (s) => {
        clearTimeout(timer);
        if (settled || s.readyState !== 1) {
          s.terminate();
          if (!settled) {
            settled = true;
            reject(new TunnelError("ERR_CONNECT_REFUSED", `connection to ${opts.host}:${opts.port} closed at once`));
          }
          return;
        }
        settled = true;
        slot.owner = opts.owner;
        resolve(s);
      },
      (e: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        const err = e as Error & { code?: string };
        reject(
          new TunnelError("ERR_CONNECT_REFUSED", `connect to ${opts.host}:${opts.port} failed: ${err.code ?? err.message}`, {
            cause: e,
          }),
        );
      },
    );
  });
}
