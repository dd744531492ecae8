/**
 * Server counters (exposed by the admin API later) and the access log: one line per finished stream.
 */
import { wireCodeName } from "../protocol/constants.ts";
import type { Stream } from "../mux/stream.ts";
import { logger } from "../log.ts";
import type { Host } from "./registry.ts";

const access = logger("access");

/** Counters of one server process. Plain numbers and maps; no timers. */
export class ServerStats {
  /** Handshakes by response status (null = closed or timed out before a response). */
  readonly handshakes = new Map<number | "none", number>();
  readonly streamsOpenedByRoute = new Map<string, number>();
  readonly refusedByRoute = new Map<string, number>();
  readonly resetsByCode = new Map<number, number>();
  readonly limitHits = new Map<string, number>();
  streamsTotal = 0;
  streamsActive = 0;
  /** Bytes from visitors to agents. */
  bytesOut = 0;
  /** Bytes from agents to visitors. */
  bytesIn = 0;

  handshake(status: number | null): void {
    const k = status ?? "none";
    this.handshakes.set(k, (this.handshakes.get(k) ?? 0) + 1);
  }

  streamOpened(route: string): void {
    this.streamsTotal++;
    this.streamsActive++;
    this.streamsOpenedByRoute.set(route, (this.streamsOpenedByRoute.get(route) ?? 0) + 1);
  }

  streamAcked(_stream: Stream): void {}

  visitorRefused(route: string): void {
    this.refusedByRoute.set(route, (this.refusedByRoute.get(route) ?? 0) + 1);
  }

  limitHit(limit: string): void {
    this.limitHits.set(limit, (this.limitHits.get(limit) ?? 0) + 1);
  }

  streamEnded(stream: Stream, code: number | null, host: Host | null, accessLog: boolean): void {
    this.streamsActive--;
    this.bytesOut += stream.bytesOut;
    this.bytesIn += stream.bytesIn;
    if (code !== null) this.resetsByCode.set(code, (this.resetsByCode.get(code) ?? 0) + 1);
    if (accessLog) {
      access.info("stream closed", {
        visitor: `${stream.open.visitorAddress}:${stream.open.visitorPort}`,
        route: stream.label,
        host: host?.hostName,
        connectionId: host?.connectionId,
        bytesIn: stream.bytesIn,
        bytesOut: stream.bytesOut,
        durationMs: Math.round(performance.now() - stream.openedAt),
        reason: code === null ? "fin" : wireCodeName(code),
      });
    }
  }
}
