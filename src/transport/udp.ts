/**
 * UDP sockets (Bun.udpSocket): a route's bound socket, which many visitors send to, and a connected socket toward a
 * service, one per flow, so that replies come back to the flow that sent. Datagrams are delivered whole (Bun reads
 * each into a 64 KiB slot and flags a truncated one); `send` never throws.
 */
import { isIPv6 } from "node:net";
import { TunnelError } from "../errors.ts";

/** A datagram's receive handler: bytes (valid during the call), the sender's port and address, whether cut short. */
export type DatagramHandler = (data: Uint8Array, port: number, address: string, truncated: boolean) => void;

/** A bound UDP socket. */
export interface UdpEndpoint {
  /** Bound port (useful with port 0). */
  readonly port: number;
  /** Sends one datagram; false when the kernel refused it (buffer full, too long, unreachable): it is lost. */
  send(data: Uint8Array, port: number, address: string): boolean;
  /** Sends datagrams to one peer in one system call (sendmmsg); how many the kernel took (the rest are lost). */
  sendMany(data: readonly Uint8Array[], port: number, address: string): number;
  close(): void;
}

/** A UDP socket connected to one peer (only its datagrams are received). */
export interface UdpConnection {
  /** Sends one datagram to the peer; false when the kernel refused it: it is lost. */
  send(data: Uint8Array): boolean;
  /** Sends datagrams in one system call (sendmmsg); how many the kernel took (the rest are lost). */
  sendMany(data: readonly Uint8Array[]): number;
  close(): void;
}

interface BindOptions {
  host: string;
  port: number;
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
  return {
    port: socket.port,
    send(data, port, address) {
      try {
        return socket.send(data, port, address);
      } catch {
        return false; // EMSGSIZE and the like: a datagram the kernel would not take is lost, as any other
      }
    },
    sendMany(data, port, address) {
      const packets: (Uint8Array | number | string)[] = [];
      for (const d of data) packets.push(d, port, address);
      try {
        return socket.sendMany(packets);
      } catch {
        return 0;
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
    send(data) {
      try {
        return socket.send(data);
      } catch {
        return false;
      }
    },
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
