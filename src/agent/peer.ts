/**
 * One server address the agent serves: TUNNEL_CONNECTIONS data slots plus one aside (control) slot, as MOSN does,
 * but the aside connection is authenticated like a data connection and only ever speaks for this agent.
 *
 * Graceful stop: DRAIN naming our data connections by their server-assigned ids goes over the aside connection,
 * and GOAWAY on every data connection as well (so a server reached only by data connections drains too). The
 * server routes no new visitors to them, acknowledges each connection with DRAINED once its streams are done and
 * closes it; the stop resolves when every data connection is closed, or at the deadline.
 */
import { WireCode } from "../protocol/constants.ts";
import { logger } from "../log.ts";
import { ConnectionSlot, serverLabel, type ServerVia, type SlotContext } from "./connection.ts";

const log = logger("peer");

/** A server address and the agent's connections to it. */
export class Peer {
  readonly slots: ConnectionSlot[] = [];
  readonly aside: ConnectionSlot;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly ctx: SlotContext,
    readonly host: string,
    readonly port: number,
    readonly via: ServerVia = {},
  ) {
    for (let i = 0; i < ctx.config.connections; i++) this.slots.push(new ConnectionSlot(ctx, host, port, i, "data", via));
    this.aside = new ConnectionSlot(ctx, host, port, 0, "aside", via);
    this.aside.onDrained = (id) => {
      const slot = this.slots.find((s) => s.connectionId === id);
      log.debug("server acknowledged drained connection", { server: this.key, connectionId: id, slot: slot?.slot });
    };
  }

  /** `host:port`, or the WebSocket URL (serverLabel). */
  get key(): string {
    return serverLabel(this.host, this.port, this.via.ws);
  }

  /** True if at least one data connection is ready. */
  get ready(): boolean {
    return this.slots.some((s) => s.state === "ready");
  }

  /** Open streams over all data connections to this server. */
  get activeStreams(): number {
    let n = 0;
    for (const s of this.slots) n += s.activeStreams;
    return n;
  }

  start(): void {
    for (const s of this.slots) s.start();
    this.aside.start();
  }

  /**
   * Stops this peer. Graceful: drain (see file header) and resolve when every data connection closed or after
   * `maxWaitMs`, then close whatever is left. Not graceful: close at once.
   */
  stop(graceful: boolean, maxWaitMs: number): Promise<void> {
    this.stopping ??= this.doStop(graceful, maxWaitMs);
    return this.stopping;
  }

  private async doStop(graceful: boolean, maxWaitMs: number): Promise<void> {
    if (graceful) {
      const ids = this.slots.filter((s) => s.state === "ready").map((s) => s.connectionId).filter((id): id is string => id !== null);
      const viaAside = ids.length > 0 && this.aside.sendControl({ type: "drain", connection_ids: ids });
      log.info("draining", { server: this.key, connections: ids.length, viaAside });
      for (const s of this.slots) s.stop(true, WireCode.SHUTTING_DOWN);
      await Promise.race([
        Promise.all(this.slots.map((s) => s.closed)),
        new Promise<void>((r) => setTimeout(r, maxWaitMs).unref?.()),
      ]);
    }
    for (const s of this.slots) s.stop(false);
    this.aside.stop(false);
  }
}
