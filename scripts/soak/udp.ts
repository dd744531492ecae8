/**
 * UDP in the soak (issue 20): during each load phase, two UDP visitors per server send seeded datagrams (9–1,200
 * bytes, one every 20 ms) through that server's /udp route (`soak/uecho`, on the port number of its TCP route) to
 * a UDP echo in this process, which every agent reaches as service `uecho`. Each datagram carries its visitor and
 * sequence number; every one that comes back must be one that was sent, whole and byte-exact, and come back once.
 * Loss is counted, not a failure (faults cut paths, and UDP may drop), but a run in which none came back fails.
 *
 * Servers and agents close flows idle for UDP_IDLE_TIMEOUT_MS (1 to 1.25 times that after the last datagram), so a
 * visitor stops sending when its phase ends and waits out that bound before it closes: at the checkpoint no flow
 * holds a descriptor on an agent.
 */
import type { udp } from "bun";
import { Prng } from "../../test/support/protocol-prng.ts";
import { sleep, type Soak } from "./state.ts";

/** TUNNEL_UDP_IDLE_TIMEOUT_MS of the soak's servers and agents. */
export const UDP_IDLE_TIMEOUT_MS = 2_000;
/** The route's name on the servers and the service's on the agents. */
export const UDP_SERVICE = "uecho";
const VISITORS_PER_SERVER = 2;
const INTERVAL_MS = 20;
const HEADER_BYTES = 8;
const MAX_BYTES = 1_200;

/** The UDP figures of the whole run. */
export interface UdpTotals {
  sent: number;
  echoed: number;
  /** Datagrams that came back not byte-exact, cut short, or from no visitor of ours. */
  corrupt: number;
  /** Datagrams that came back more than once. */
  duplicated: number;
}

/** A new, empty account. */
export function newUdpTotals(): UdpTotals {
  return { sent: 0, echoed: 0, corrupt: 0, duplicated: 0 };
}

/** The datagram `seq` of visitor `visitor` (its size and bytes follow from both and the run's seed). */
function datagram(seed: number, visitor: number, seq: number): Uint8Array {
  const rng = new Prng((seed ^ Math.imul(visitor, 0x9e3779b1) ^ Math.imul(seq, 0x85ebca6b)) >>> 0);
  const d = new Uint8Array(rng.range(HEADER_BYTES + 1, MAX_BYTES));
  const view = new DataView(d.buffer);
  view.setUint32(0, visitor);
  view.setUint32(4, seq);
  for (let i = HEADER_BYTES; i < d.length; i++) d[i] = rng.int(256);
  return d;
}

/** Starts the echo every agent's `uecho` service points at; its port. */
export async function startUdpEcho(s: Soak): Promise<number> {
  const echo = await Bun.udpSocket({
    hostname: "127.0.0.1",
    socket: {
      data: (sock, data, port, address) => {
        try {
          sock.send(data, port, address);
        } catch {
          // ECONNREFUSED: that flow's agent socket is gone (the agent restarted); the echo is lost like any datagram
        }
      },
      error: () => {}, // ICMP errors of earlier sends, reported later: the same loss
    },
  });
  s.udp.echoPort = echo.port;
  return echo.port;
}

/** Checks one datagram that came back to visitor `visitor`. */
function check(s: Soak, visitor: number, seen: Set<number>, data: Uint8Array, truncated: boolean): void {
  const t = s.udp.totals;
  if (truncated || data.byteLength < HEADER_BYTES) {
    t.corrupt++;
    return;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const seq = view.getUint32(4);
  const want = view.getUint32(0) === visitor && seq < s.udp.nextSeq.get(visitor)! ? datagram(s.opts.seed, visitor, seq) : null;
  if (want === null || want.byteLength !== data.byteLength || !want.every((b, i) => b === data[i])) {
    t.corrupt++;
    return;
  }
  if (seen.has(seq)) {
    t.duplicated++;
    return;
  }
  seen.add(seq);
  t.echoed++;
}

/** One UDP visitor to server `index`: a datagram every INTERVAL_MS while the load phase lasts. */
async function udpVisitor(s: Soak, index: number, visitor: number): Promise<void> {
  const seen = new Set<number>();
  s.udp.nextSeq.set(visitor, 0);
  let sock: udp.Socket<"uint8array"> | null = null;
  try {
    sock = await Bun.udpSocket({
      hostname: "127.0.0.1",
      binaryType: "uint8array",
      socket: {
        data: (_s, data, _port, _address, flags) => check(s, visitor, seen, data, flags?.truncated === true),
        error: () => {}, // ECONNREFUSED of an earlier send while the server restarted: those datagrams are lost
      },
    });
    while (s.load.phase === "load") {
      const port = s.servers[index]?.udpPort ?? 0;
      const seq = s.udp.nextSeq.get(visitor)!;
      s.udp.nextSeq.set(visitor, seq + 1);
      try {
        sock.send(datagram(s.opts.seed, visitor, seq), port, "127.0.0.1");
      } catch {
        // ECONNREFUSED: the server is down (restarting); the datagram is lost like any other
      }
      s.udp.totals.sent++;
      await sleep(INTERVAL_MS);
    }
    await sleep(UDP_IDLE_TIMEOUT_MS * 1.25 + 500); // late echoes are checked; then no flow is left anywhere
  } finally {
    sock?.close();
  }
}

/** The UDP visitors of a load phase (their promises end once their flows are closed everywhere). */
export function udpLoops(s: Soak): Promise<void>[] {
  const loops: Promise<void>[] = [];
  for (const slot of s.servers) {
    for (let k = 0; k < VISITORS_PER_SERVER; k++) loops.push(udpVisitor(s, slot.index, s.udp.nextVisitor++));
  }
  return loops;
}
