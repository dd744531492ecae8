/**
 * A tiny authoritative DNS responder on 127.0.0.1 (UDP, port 0) for discovery tests: answers A queries for any
 * name with the addresses currently set, AAAA with none. Enough for node:dns Resolver with setServers.
 */
import dgram from "node:dgram";

/** A running responder; change `addresses` to change the answer. */
export interface DnsResponder {
  readonly port: number;
  addresses: string[];
  /** Queries answered so far. */
  queries: number;
  stop(): void;
}

/** Starts the responder. */
export function startDnsResponder(addresses: string[]): Promise<DnsResponder> {
  const sock = dgram.createSocket("udp4");
  const r: { -readonly [K in keyof DnsResponder]: DnsResponder[K] } = { port: 0, addresses, queries: 0, stop: () => sock.close() };
  sock.on("message", (msg, rinfo) => {
    if (msg.length < 17) return;
    let i = 12;
    while (i < msg.length && msg[i] !== 0) i += (msg[i] as number) + 1;
    i += 5; // zero byte, QTYPE, QCLASS
    if (i > msg.length) return;
    r.queries++;
    const qtype = msg.readUInt16BE(i - 4);
    const answers = qtype === 1 ? r.addresses : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180, 2); // response, recursion available, no error
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const records = answers.map((ip) => {
      const a = Buffer.alloc(16);
      a.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      a.writeUInt16BE(1, 2); // A
      a.writeUInt16BE(1, 4); // IN
      a.writeUInt32BE(1, 6); // TTL
      a.writeUInt16BE(4, 10);
      ip.split(".").forEach((p, k) => (a[12 + k] = Number(p)));
      return a;
    });
    sock.send(Buffer.concat([header, msg.subarray(12, i), ...records]), rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => {
    sock.bind(0, "127.0.0.1", () => {
      r.port = sock.address().port;
      resolve(r);
    });
  });
}
