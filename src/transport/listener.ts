/** Listening sockets (agent-facing and route listeners): Bun.listen with the shared handlers of transport/tcp.ts. */
import type { TCPSocketListener, TLSOptions } from "bun";
import { TunnelError } from "../errors.ts";
import { handlersFor, handshake, type NetSocket, type SocketOwner, type SocketSlot } from "./tcp.ts";
import type { ConnectionCap } from "./connection-cap.ts";

/**
 * Hooks for a listener: `accept` returns the owner of a new socket, or null to refuse (socket is closed). With
 * `tls`, `accept` runs at TCP accept, before the TLS handshake (so a handshake deadline covers TLS too), and the
 * owner learns the TLS outcome from `onHandshake`; it must not write before that.
 */
export interface ListenOptions {
  host: string;
  port: number;
  tls?: TLSOptions | undefined;
  accept(socket: NetSocket): SocketOwner | null;
  /** Called when a handler threw (our bug) before the socket is terminated. */
  onHandlerError?(error: Error): void;
  /** Open connections at most, shared with other listeners (TUNNEL_MAX_CONNECTIONS): past it, closed at accept. */
  cap?: ConnectionCap | undefined;
  /**
   * Bind with SO_REUSEPORT: another process (of the same user) may bind the same address meanwhile, and the kernel
   * spreads new connections over both (a rolling restart). Bun.listen takes `reusePort` though bun-types lists it
   * only for connect (measured: bound twice with it, EADDRINUSE without).
   */
  reusePort?: boolean;
}

/** A bound listener. */
export interface Listener {
  readonly port: number;
  readonly host: string;
  /** Stops accepting; `closeActive` also closes the accepted sockets (those accepted before a setTls too). */
  stop(closeActive?: boolean): void;
  /**
   * TLS listeners: new connections use `tls` from now on; accepted connections keep theirs and stay open. Bun's
   * `reload()` ignores TLS options (oven-sh/bun#43815), so the listener is bound anew on the same address with the
   * same handlers (the old one stops accepting first: a connection arriving in that instant may be refused, and
   * agents retry). Throws TunnelError ERR_LISTEN if neither the new nor the old options could be bound again.
   */
  setTls(tls: TLSOptions): void;
}

/** Binds a listener. Throws TunnelError ERR_LISTEN if the address cannot be bound. */
export function listen(opts: ListenOptions): Listener {
  const plain = handlersFor(opts.accept, opts.onHandlerError, opts.cap);
  const socket = opts.tls ? { ...plain, handshake } : plain;
  const bind = (port: number, tls: TLSOptions | undefined): TCPSocketListener<SocketSlot> => {
    try {
      const reuse = opts.reusePort === true ? { reusePort: true } : {};
      return Bun.listen<SocketSlot>({ hostname: opts.host, port, allowHalfOpen: true, ...(tls ? { tls } : {}), ...reuse, socket });
    } catch (e) {
      throw new TunnelError("ERR_LISTEN", `cannot listen on ${opts.host}:${port}: ${(e as Error).message}`, { cause: e });
    }
  };
  let tls = opts.tls;
  let l = bind(opts.port, tls);
  const port = l.port;
  /** Listeners replaced by setTls: stopped, but their accepted sockets live on until stop(true). */
  const retired: TCPSocketListener<SocketSlot>[] = [];
  return {
    port,
    host: opts.host,
    stop(closeActive = false) {
      l.stop(closeActive);
      if (closeActive) for (const r of retired.splice(0)) r.stop(true);
    },
    setTls(next) {
      if (tls === undefined) throw new TunnelError("ERR_INTERNAL", "setTls on a plaintext listener");
      l.stop(false);
      retired.push(l);
      try {
        l = bind(port, next);
        tls = next;
      } catch (e) {
        l = bind(port, tls); // the old options again; if even this fails, ERR_LISTEN reaches the caller
        throw e;
      }
    },
  };
}

