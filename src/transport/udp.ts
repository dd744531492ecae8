/**
 * UDP sockets (Bun.udpSocket): a route's bound socket, which many visitors send to, and a connected socket toward a
 * service, one per flow, so that replies come back to the flow that sent. Datagrams are delivered whole (Bun reads
 * each into a 64 KiB slot and flags a truncated one); `sendMany` never throws.
 */
import { isIPv6 } from "node:net";
import { TunnelError } from "../errors.ts";

/**
 * Receive buffer a route's socket asks for (SO_RCVBUF; Linux caps it at net.core.rmem_max, then doubles it). The
 * default (208 KiB, about 90 datagrams of 1,400 bytes: 1.3 ms at 800 Mbit/s) overflowed whenever the server's event
 * loop was away that long, and was most of the loss above 300 Mbit/s (BENCHMARKS.md, UDP). One socket per route,
 * so this is at most 4 MiB (8 MiB as Linux counts it) of kernel memory per UDP route.
 */
export const ROUTE_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

/** The symbol under which node:dgram keeps a socket's state (learned once from a socket that never binds). */
let dgramState: symbol | null | undefined;

/**
 * Sets (with `bytes`) or reads the receive buffer of a Bun UDP socket, or returns null if this Bun no longer allows
 * it. `Bun.udpSocket` has no option for SO_RCVBUF; node:dgram's get/setRecvBufferSize do it on the same kind of
 * socket, which they find in their state: we hand them ours (Bun 1.4). Never throws.
 */
function receiveBuffer(socket: object, bytes?: number): number | null {
  const dgram = require("node:dgram") as typeof import("node:dgram"); // loaded only where a UDP socket is made
  if (dgramState === undefined) {
    dgramState = Object.getOwnPropertySymbols(dgram.createSocket("udp4")).find((x) => x.description === "state symbol") ?? null;
  }
  if (dgramState === null) return null;
  const self = { [dgramState]: { handle: { socket } } };
  const proto = dgram.Socket.prototype as unknown as { setRecvBufferSize(n: number): void; getRecvBufferSize(): number };
  try {
    if (bytes !== undefined) proto.setRecvBufferSize.call(self, bytes);
    const n = proto.getRecvBufferSize.call(self);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A datagram's receive handler: bytes (valid during the call), the sender's port and address, whether cut short. */
export type DatagramHandler = (data: Uint8Array, port: number, address: string, truncated: boolean) => void;

/** A bound UDP socket. */
export interface UdpEndpoint {
  /** Bound port (useful with port 0). */
  readonly port: number;
  /** The kernel's receive buffer for it (bytes, as the kernel counts them), or null if unknown. */
  readonly receiveBufferBytes: number | null;
  /**
   * Sends datagrams to one peer in one system call (sendmmsg); how many the kernel took. The rest are lost (buffer
   * full, too long, unreachable), as any datagram can be; never throws.
   */
  sendMany(data: readonly Uint8Array[], port: number, address: string): number;
  close(): void;
}

/** A UDP socket connected to one peer (only its datagrams are received). */
export interface UdpConnection {
  /** Sends datagrams in one system call (sendmmsg); how many the kernel took (the rest are lost); never throws. */
  sendMany(data: readonly Uint8Array[]): number;
  close(): void;
}

interface BindOptions {
  host: string;
  port: number;
  /** Receive buffer to ask for (default ROUTE_RECEIVE_BUFFER_BYTES). */
  receiveBufferBytes?: number;
  onDatagram: DatagramHandler;
  /** A socket error (an ICMP error reported on a later call, …): the socket stays open. */
  onError?(error: Error): void;
}

/**
 * Bun reports some UDP socket errors without an Error (an ICMP port unreachable for a connected socket came as
 * `undefined`, and a handler reading `.message` then crashed the agent): always hand on an Error.
 */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(error === undefined ? "UDP socket error (no detail from the runtime)" : String(error));
}

/** Binds a UDP socket. Throws TunnelError ERR_LISTEN if the address cannot be bound. */
export async function bindUdp(opts: BindOptions): Promise<UdpEndpoint> {
  let socket: import("bun").udp.Socket<"uint8array">;
  try {
    socket = await Bun.udpSocket({
      hostname: opts.host,
      port: opts.port,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address, flags) => opts.onDatagram(data, port, address, flags?.truncated === true),
        error: (_s, error) => opts.onError?.(asError(error)),
      },
    });
  } catch (e) {
    throw new TunnelError("ERR_LISTEN", `cannot listen on ${opts.host}:${opts.port}/udp: ${(e as Error).message}`, { cause: e });
  }
  receiveBuffer(socket, opts.receiveBufferBytes ?? ROUTE_RECEIVE_BUFFER_BYTES);
  return {
    port: socket.port,
    get receiveBufferBytes() {
      return receiveBuffer(socket);
    },
    sendMany(data, port, address) {
      const packets: (Uint8Array | number | string)[] = [];
      for (const d of data) packets.push(d, port, address);
      try {
        return socket.sendMany(packets);
      } catch {
        return 0; // EMSGSIZE and the like: datagrams the kernel would not take are lost, as any other
      }
    },
    close: () => socket.close(),
  };
}

interface ConnectOptions {
  host: string;
  port: number;
  onDatagram(data: Uint8Array, truncated: boolean): void;
  onError?(error: Error): void;
}

/** Opens a UDP socket connected to `host:port` (an IP address). Throws TunnelError ERR_CONNECT_REFUSED on failure. */
export async function connectUdp(opts: ConnectOptions): Promise<UdpConnection> {
  let socket: import("bun").udp.ConnectedSocket<"uint8array">;
  try {
    socket = (await Bun.udpSocket({
      hostname: isIPv6(opts.host) ? "::" : "0.0.0.0",
      binaryType: "uint8array",
      connect: { hostname: opts.host, port: opts.port },
      socket: {
        data: (_s, data, _port, _address, flags) => opts.onDatagram(data, flags?.truncated === true),
        error: (_s, error) => opts.onError?.(asError(error)),
      },
    }));
  } catch (e) {
    throw new TunnelError("ERR_CONNECT_REFUSED", `cannot open a UDP socket to ${opts.host}:${opts.port}: ${(e as Error).message}`, { cause: e });
  }
  return {
    sendMany(data) {
      try {
        return socket.sendMany(data);
      } catch {
        return 0;
      }
    },
    close: () => socket.close(),
  };
}
