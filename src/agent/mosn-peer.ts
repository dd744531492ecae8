/**
 * One server address under TUNNEL_PROTOCOL=mosn (SPEC.md §7): TUNNEL_CONNECTIONS raw slots (raw-slot.ts) and one
 * aside connection, dial only, as MOSN's agent keeps it (no InitInfo on it; redialled when it closes).
 *
 * Graceful stop, as MOSN's: every data connection stops redialling, a GracefulClose naming their local `ip:port`s
 * and the cluster goes over the aside connection (dialled then if it is down), and the stop resolves when the
 * spliced connections have ended (a server that retired them closes the idle ones) or after the maximum wait.
 */
import { encodeHandshake } from "../protocol/handshake.ts";
import { HandshakeFlag } from "../protocol/constants.ts";
import { connect, type NetSocket, type SocketOwner } from "../transport/tcp.ts";
import { logger } from "../log.ts";
import { Backoff } from "./backoff.ts";
import type { SlotContext, SlotState } from "./connection.ts";
import { RawSlot } from "./raw-slot.ts";

const log = logger("peer");

/** The aside connection as the admin endpoint shows it. */
export interface AsideView {
  readonly state: SlotState;
  readonly connectionId: null;
}

/** A MOSN tunnel server and the agent's raw connections to it. */
export class MosnPeer {
  readonly slots: RawSlot[] = [];
  readonly aside: AsideView & { state: SlotState } = { state: "dialing", connectionId: null };
  private asideSocket: NetSocket | null = null;
  private asideTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly asideBackoff: Backoff;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly ctx: SlotContext,
    readonly host: string,
    readonly port: number,
  ) {
    const service = ctx.config.services[0];
    if (service === undefined) throw new Error("TUNNEL_PROTOCOL=mosn without a service (config rules forbid it)");
    for (let i = 0; i < ctx.config.connections; i++) this.slots.push(new RawSlot(ctx, host, port, i, service));
    this.asideBackoff = new Backoff(ctx.config.reconnectBaseMs, ctx.config.reconnectMaxMs, ctx.random);
  }

  /** `host:port`. */
  get key(): string {
    return `${this.host}:${this.port}`;
  }

  /** True if at least one data connection is spliced to the service. */
  get ready(): boolean {
    return this.slots.some((s) => s.state === "ready");
  }

  /** Data connections that have carried bytes and are still open. */
  get activeStreams(): number {
    let n = 0;
    for (const s of this.slots) n += s.activeStreams;
    return n;
  }

  start(): void {
    for (const s of this.slots) s.start();
    void this.dialAside();
  }

  /** Stops this peer (see the file header); not graceful: closes everything at once. */
  stop(graceful: boolean, maxWaitMs: number): Promise<void> {
    this.stopping ??= this.doStop(graceful, maxWaitMs);
    return this.stopping;
  }

  private async doStop(graceful: boolean, maxWaitMs: number): Promise<void> {
    if (this.asideTimer !== null) clearTimeout(this.asideTimer);
    if (graceful) {
      const addresses = this.slots.map((s) => s.localAddress).filter((a): a is string => a !== null);
      for (const s of this.slots) s.stop(true);
      const wait = new Promise<void>((r) => setTimeout(r, maxWaitMs).unref?.());
      const sent = await Promise.race([this.sendGracefulClose(addresses), wait.then(() => false)]);
      log.info("draining", { server: this.key, protocol: "mosn", connections: addresses.length, gracefulClose: sent });
      await Promise.race([Promise.all(this.slots.map((s) => s.closed)), wait]);
    }
    for (const s of this.slots) s.stop(false);
    this.asideSocket?.end();
    this.aside.state = "stopped";
  }

  /** Writes MOSN's GracefulClose on the aside connection (dialling one if it is down); false if it could not. */
  private async sendGracefulClose(addresses: string[]): Promise<boolean> {
    const frame = encodeHandshake({ flag: HandshakeFlag.GRACEFUL_CLOSE, body: { addresses, cluster_name: this.ctx.config.cluster } });
    let socket = this.asideSocket;
    if (socket === null) {
      try {
        socket = await this.connectAside();
      } catch (e) {
        log.warn("cannot send GracefulClose: aside connection failed", { server: this.key, error: (e as Error).message });
        return false;
      }
    }
    const ok = socket.write(frame) === frame.byteLength;
    socket.end();
    return ok;
  }

  private connectAside(): Promise<NetSocket> {
    const owner: SocketOwner = {
      onData() {}, // a MOSN server sends nothing on it
      onDrain() {},
      onEnd: () => this.asideSocket?.end(),
      onClose: () => this.asideClosed(),
    };
    const { config } = this.ctx;
    return connect({ host: this.host, port: this.port, tls: this.ctx.tls, timeoutMs: config.connectTimeoutMs, owner });
  }

  /** Dials the aside connection (no InitInfo: MOSN's initAside only dials). */
  private async dialAside(): Promise<void> {
    if (this.stopping !== null) return;
    this.aside.state = "dialing";
    try {
      const socket = await this.connectAside();
      if (this.stopping !== null) return void socket.end();
      this.asideSocket = socket;
      this.aside.state = "ready";
    } catch {
      this.scheduleAside();
    }
  }

  private asideClosed(): void {
    this.asideSocket = null;
    if (this.stopping === null) this.scheduleAside();
  }

  private scheduleAside(): void {
    this.aside.state = "backoff";
    this.asideTimer = setTimeout(() => {
      this.asideTimer = null;
      void this.dialAside();
    }, this.asideBackoff.next());
  }
}
