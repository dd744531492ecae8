/**
 * A MOSN tunnel agent written from MOSN's documented behaviour (shared/reference/mosn-tunnel.md §1–§2), not from
 * our code: `connection_num` data connections, each dials, writes ConnectionInitInfo exactly as MOSN's Go encoder
 * does (header 20 88 01 01 01 00 + uint16 length, compact JSON in Go field order, weight 10, host_name "", extra
 * null), reads frames until a ConnectionInitResponse decodes, and on status 1 hands the socket over as a downstream
 * connection: here proxied byte for byte to a local service (the edge app), bytes behind the response first. When
 * the connection closes it dials again at once (MOSN's reconnect), unless stopped. stop() marks every connection
 * prepareClose, then writes a GracefulClose listing their local addresses on a fresh (aside) connection.
 */
import net from "node:net";
import type { Socket } from "bun";
import { flushQueue, writeOrQueue } from "./write-queue.ts";

/** MOSN's InitInfo body, exactly as Go's encoding/json writes it (fields in struct order, no omitempty). */
export function mosnInitInfoJson(cluster: string, policy: string, credential: string, weight = 10): string {
  return `{"cluster_name":${JSON.stringify(cluster)},"weight":${weight},"host_name":"","credential_policy":${JSON.stringify(policy)},"credential":${JSON.stringify(credential)},"extra":null}`;
}

/** A MOSN handshake frame: magic 20 88, version 1, flag, type (01 00 request, 02 00 response), uint16 BE length. */
export function mosnFrame(flag: 1 | 2 | 3, json: string): Uint8Array {
  const body = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + body.length);
  out.set([0x20, 0x88, 0x01, flag, flag === 2 ? 2 : 1, 0, body.length >> 8, body.length & 0xff]);
  out.set(body, 8);
  return out;
}

/** Reads one MOSN frame from the front of `buf`: its flag, JSON and the bytes after it, or null while incomplete. */
export function readMosnFrame(buf: Uint8Array): { flag: number; json: unknown; rest: Uint8Array } | null {
  if (buf.length <= 8) return null; // MOSN waits for more than the header
  const len = ((buf[6] as number) << 8) | (buf[7] as number);
  if (buf.length < 8 + len) return null;
  if (buf[0] !== 0x20 || buf[1] !== 0x88) throw new Error("bad magic");
  return { flag: buf[3] as number, json: JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + len))), rest: buf.subarray(8 + len) };
}

/** Options of {@link startMosnAgent}. */
export interface MosnAgentOptions {
  serverPort: number;
  /** The local service each handed-over connection is proxied to. */
  servicePort: number;
  cluster: string;
  policy: string;
  credential: string;
  connectionNum: number;
  /** Bytes written right behind the InitInfo, in the same write (the first connection only). */
  trailing?: Uint8Array;
}

/** A running MOSN agent. */
export interface MosnAgent {
  /** Statuses of every handshake so far, in order. */
  readonly statuses: number[];
  /** Connections handed over (status 1) so far. */
  readonly handedOver: number;
  /** Local `ip:port` of the data connections open now. */
  localAddresses(): string[];
  /** MOSN's Stop: prepareClose every data connection, then GracefulClose from `fromAddress` (default 127.0.0.1). */
  stop(fromAddress?: string): Promise<void>;
  /** Closes everything without a GracefulClose. */
  kill(): void;
}

interface Pipe {
  queue: Uint8Array[];
  other: Socket<Pipe> | null;
  ended: boolean;
}

/** Starts the agent; resolves once every data connection was handed over (or answered, if refused). */
export async function startMosnAgent(opts: MosnAgentOptions): Promise<MosnAgent> {
  const statuses: number[] = [];
  const open = new Set<Socket<Pipe>>();
  let stopped = false;
  let handedOver = 0;
  let trailing = opts.trailing;
  let firstRound = opts.connectionNum;
  let settleFirst!: () => void;
  const firstDone = new Promise<void>((r) => (settleFirst = r));
  const initInfo = mosnFrame(1, mosnInitInfoJson(opts.cluster, opts.policy, opts.credential));

  const link = (a: Socket<Pipe>, b: Socket<Pipe>) => {
    a.data.other = b;
    b.data.other = a;
  };
  const handlers = {
    data(s: Socket<Pipe>, chunk: Uint8Array) {
      const o = s.data.other;
      if (o !== null && !writeOrQueue(o, o.data.queue, chunk)) s.pause();
    },
    drain(s: Socket<Pipe>) {
      if (!flushQueue(s, s.data.queue)) return;
      s.data.other?.resume();
      if (s.data.other?.data.ended) s.shutdown();
    },
    end(s: Socket<Pipe>) {
      s.data.ended = true;
      const o = s.data.other;
      if (o !== null && o.data.queue.length === 0) o.shutdown();
    },
    close(s: Socket<Pipe>) {
      open.delete(s);
      s.data.other?.end();
    },
  };

  const dataConnection = (): void => {
    if (stopped) return;
    let buf: Uint8Array = new Uint8Array(0);
    let answered = false;
    void Bun.connect<Pipe>({
      hostname: "127.0.0.1",
      port: opts.serverPort,
      allowHalfOpen: true,
      data: { queue: [], other: null, ended: false },
      socket: {
        open(s) {
          const extra = trailing;
          trailing = undefined;
          if (extra === undefined) s.write(initInfo);
          else {
            const both = new Uint8Array(initInfo.length + extra.length);
            both.set(initInfo);
            both.set(extra, initInfo.length);
            s.write(both);
          }
        },
        data(s, chunk) {
          if (answered) return handlers.data(s, chunk);
          const joined = new Uint8Array(buf.length + chunk.length);
          joined.set(buf);
          joined.set(chunk, buf.length);
          buf = joined;
          const frame = readMosnFrame(buf);
          if (frame === null) return;
          answered = true;
          const status = (frame.json as { status: number }).status;
          statuses.push(status);
          if (--firstRound === 0) settleFirst();
          if (status !== 1) return; // MOSN's slot then dies (connection.go:272): no retry
          handedOver++;
          open.add(s);
          s.pause();
          const rest = frame.rest.slice();
          void Bun.connect<Pipe>({
            hostname: "127.0.0.1",
            port: opts.servicePort,
            allowHalfOpen: true,
            data: { queue: [], other: null, ended: false },
            socket: {
              ...handlers,
              open(svc) {
                link(s, svc);
                if (rest.length > 0) writeOrQueue(svc, svc.data.queue, rest);
                s.resume();
              },
            },
          }).catch(() => s.end());
        },
        drain: handlers.drain,
        end(s) {
          if (answered) handlers.end(s);
          else s.end();
        },
        close(s) {
          handlers.close(s);
          if (answered && !stopped) dataConnection(); // MOSN's reconnect on a close event
        },
      },
    }).catch(() => {
      if (!stopped) setTimeout(dataConnection, 20);
    });
  };
  for (let i = 0; i < opts.connectionNum; i++) dataConnection();
  await firstDone;

  const localAddresses = () => [...open].map((s) => `${s.localAddress}:${s.localPort}`);
  return {
    statuses,
    get handedOver() {
      return handedOver;
    },
    localAddresses,
    async stop(fromAddress = "127.0.0.1") {
      stopped = true; // prepareClose: a close no longer reconnects
      const body = `{"addresses":${JSON.stringify(localAddresses())},"cluster_name":${JSON.stringify(opts.cluster)}}`;
      await new Promise<void>((resolve, reject) => {
        const c = net.createConnection({ host: "127.0.0.1", port: opts.serverPort, localAddress: fromAddress });
        c.on("connect", () => c.end(Buffer.from(mosnFrame(3, body))));
        c.on("error", reject);
        c.on("close", () => resolve());
      });
    },
    kill() {
      stopped = true;
      for (const s of open) s.terminate();
    },
  };
}
