/**
 * UDP counters of one process, by label (server: route `cluster/service`; agent: service): datagrams and bytes each
 * way and drops by reason. Directions as for streams: `upstream` visitor → service, `downstream` service → visitor.
 */
import type { DropReason, FlowCounters } from "../mux/datagram-flow.ts";

/** One label's UDP counters. */
export interface UdpTally {
  datagramsUp: number;
  datagramsDown: number;
  bytesUp: number;
  bytesDown: number;
  readonly dropped: Map<DropReason, number>;
}

/** Every UDP label's counters; `counters(label)` is what the flows of that label count into. */
export class UdpStats {
  readonly byLabel = new Map<string, UdpTally>();

  /** @param localIsVisitor true on the server (the local UDP peer is the visitor), false on the agent. */
  constructor(private readonly localIsVisitor: boolean) {}

  /** The tally of `label`, made on first use. */
  tally(label: string): UdpTally {
    let t = this.byLabel.get(label);
    if (t === undefined) {
      t = { datagramsUp: 0, datagramsDown: 0, bytesUp: 0, bytesDown: 0, dropped: new Map() };
      this.byLabel.set(label, t);
    }
    return t;
  }

  /** Counters for the flows of `label`. */
  counters(label: string): FlowCounters {
    const t = this.tally(label);
    const up = (bytes: number) => {
      t.datagramsUp++;
      t.bytesUp += bytes;
    };
    const down = (bytes: number) => {
      t.datagramsDown++;
      t.bytesDown += bytes;
    };
    return {
      received: this.localIsVisitor ? up : down,
      delivered: this.localIsVisitor ? down : up,
      dropped: (reason) => t.dropped.set(reason, (t.dropped.get(reason) ?? 0) + 1),
    };
  }
}
