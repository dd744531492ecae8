/** UDP peers for tests: an echo service, a mute one, and a client that collects what comes back. */
import type { udp } from "bun";

/** A UDP socket bound on loopback port 0 that sends every datagram back to its sender. */
export async function udpEcho(host = "127.0.0.1"): Promise<udp.Socket<"uint8array">> {
  return Bun.udpSocket({
    hostname: host,
    binaryType: "uint8array",
    socket: {
      data(s, data, port, address) {
        s.send(data, port, address);
      },
    },
  });
}

/** A UDP socket bound on loopback that counts what it gets and never answers. */
export async function udpSink(host = "127.0.0.1"): Promise<{ socket: udp.Socket<"uint8array">; received: Uint8Array[] }> {
  const received: Uint8Array[] = [];
  const socket = await Bun.udpSocket({
    hostname: host,
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        received.push(data.slice());
      },
    },
  });
  return { socket, received };
}

/** A client socket that keeps every datagram it receives, in order. */
export interface UdpClient {
  readonly socket: udp.Socket<"uint8array">;
  readonly received: Uint8Array[];
  /** Sends to `port` on the client's host. */
  send(data: Uint8Array | string, port: number): boolean;
  close(): void;
}

export async function udpClient(host = "127.0.0.1"): Promise<UdpClient> {
  const received: Uint8Array[] = [];
  const socket = await Bun.udpSocket({
    hostname: host,
    binaryType: "uint8array",
    socket: {
      data(_s, data) {
        received.push(data.slice());
      },
    },
  });
  return {
    socket,
    received,
    send: (data, port) => socket.send(typeof data === "string" ? new TextEncoder().encode(data) : data, port, host),
    close: () => socket.close(),
  };
}

/** A loopback port free for both TCP and UDP right now (bound and released; for programs that need a fixed port). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const u = await Bun.udpSocket({ hostname: host });
    const port = u.port;
    try {
      const t = Bun.listen({ hostname: host, port, socket: { data() {} } });
      t.stop(true);
      return port;
    } catch {
      // taken for TCP: try another
    } finally {
      u.close();
    }
  }
  throw new Error("no port free for both TCP and UDP");
}

/** Runs a command to its end: exit code and output. */
export async function run(cmd: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill(), timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Whether `cmd` is installed (on PATH, or in /usr/sbin for dnsmasq). */
export function which(cmd: string): string | null {
  return Bun.which(cmd, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
}
