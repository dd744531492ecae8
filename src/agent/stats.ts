/**
 * Agent counters, read by the admin endpoint at scrape time (src/admin/). Plain numbers and maps, touched per
 * stream or per connection event, never per frame; gauges (open streams, connection states) are computed from the
 * live objects when scraped.
 */
import type { Stream } from "../mux/stream.ts";
import { histogramOf, type Histogram } from "../stats/histogram.ts";
import { addTally, resetCodeLabel, type StreamTally } from "../stats/tally.ts";

/** Counters of one agent process. */
export class AgentStats {
  /** Handshakes by the server's response status ("none": failed before a response). */
  readonly handshakes = new Map<number | "none", number>();
  /** Lost connections that were dialled again, by server `host:port`. */
  readonly reconnects = new Map<string, number>();
  /** Streams open now (live bytes are read from them when scraped). */
  readonly openStreams = new Set<Stream>();
  /** Ended streams by service ("" for a stream refused before a service was found). */
  readonly ended = new Map<string, StreamTally>();
  /** Resets by `service\0wire code name` ({@link resetCodeLabel}). */
  readonly resets = new Map<string, number>();
  /** OPENs refused before a stream existed (REFUSED_STREAM), by reason. */
  readonly refused = { stream_limit: 0, inbound_budget: 0 };
  /** Heartbeat round trip, seconds, by server `host:port`. */
  readonly rttSeconds = new Map<string, Histogram>();

  handshake(status: number | null): void {
    const k = status ?? "none";
    this.handshakes.set(k, (this.handshakes.get(k) ?? 0) + 1);
  }

  reconnect(server: string): void {
    this.reconnects.set(server, (this.reconnects.get(server) ?? 0) + 1);
  }

  streamOpened(stream: Stream): void {
    this.openStreams.add(stream);
  }

  /** On the agent, bytes the stream wrote to the target are upstream (`bytesIn`), its reads downstream. */
  streamEnded(stream: Stream, code: number | null): void {
    this.openStreams.delete(stream);
    addTally(this.ended, stream.label, stream.bytesIn, stream.bytesOut);
    if (code !== null) {
      const key = `${stream.label}\u0000${resetCodeLabel(code)}`;
      this.resets.set(key, (this.resets.get(key) ?? 0) + 1);
    }
  }

  /** A TUNNEL_PROTOCOL=mosn connection that carried bytes ended: counted as one stream of `service`. */
  rawEnded(service: string, upBytes: number, downBytes: number): void {
    addTally(this.ended, service, upBytes, downBytes);
  }

  /** A server left discovery: drop its per-server counters. */
  forgetServer(server: string): void {
    this.reconnects.delete(server);
    this.rttSeconds.delete(server);
  }

  rtt(server: string, ms: number): void {
    histogramOf(this.rttSeconds, server).observe(ms / 1000);
  }
}
