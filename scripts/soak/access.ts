/**
 * The servers' access-log lines as the soak uses them: which agent connection carried a visitor's stream and how the
 * server ended it. A line is matched to its stream by the visitor's local port; lines that arrive before the stream
 * learned its port wait in an {@link AccessBook}. Pure: no I/O and no clock (callers pass the times).
 */
import type { LogLine } from "../lib/roles.ts";

/** One access-log line ("stream closed" or "stream retried") of a server. */
export interface AccessLine {
  /** `address:port` of the visitor as the server saw it (port 0 if it was gone before the server read it). */
  visitor: string;
  /** The agent connection that carried the stream (absent on "stream retried" and refused streams). */
  connectionId: string | undefined;
  /** The agent's host name. */
  host: string | undefined;
  /** "fin" for a clean end, else the wire code name of the reset (e.g. "CANCEL", "KEEPALIVE_TIMEOUT"). */
  reason: string;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Wall-clock ms when the soak read the line. */
  at: number;
}

/** The access line in a server's JSON log line `line`, read at `at` (wall-clock ms). Missing fields become ""/0. */
export function parseAccessLine(line: LogLine, at: number): AccessLine {
  return {
    visitor: String(line.visitor ?? ""),
    connectionId: typeof line.connectionId === "string" ? line.connectionId : undefined,
    host: typeof line.host === "string" ? line.host : undefined,
    reason: String(line.reason ?? ""),
    bytesIn: Number(line.bytesIn ?? 0),
    bytesOut: Number(line.bytesOut ?? 0),
    durationMs: Number(line.durationMs ?? 0),
    at,
  };
}

/** The key a stream and its access line share: the server's index and the visitor's local port. */
export function accessKey(server: number, port: number): string {
  return `${server}:${port}`;
}

/** The key of an access line of server `server` (from the port in its `visitor` field). */
export function accessKeyOf(server: number, a: AccessLine): string {
  return accessKey(server, Number(a.visitor.slice(a.visitor.lastIndexOf(":") + 1)));
}

/**
 * Access lines not matched to a visitor yet, by key. A stream refused at once can be logged by the server before the
 * visitor's own `open` callback ran in the soak (when its loop lags); `open` looks here too.
 */
export class AccessBook {
  private readonly pending = new Map<string, AccessLine[]>();

  /** Lines waiting, over all keys. */
  get size(): number {
    let n = 0;
    for (const list of this.pending.values()) n += list.length;
    return n;
  }

  /** Keeps `a` until a stream with `key` claims it. */
  park(key: string, a: AccessLine): void {
    const list = this.pending.get(key) ?? [];
    list.push(a);
    this.pending.set(key, list);
  }

  /** Takes the first waiting line of `key` logged at or after `startedAt` (a stream that just opened); null if none. */
  claimByKey(key: string, startedAt: number): AccessLine | null {
    const list = this.pending.get(key);
    if (list === undefined) return null;
    const i = list.findIndex((a) => a.at >= startedAt);
    if (i < 0) return null;
    return this.take(key, list, i);
  }

  /**
   * A visitor whose connect was reset never learned its local port (its `open` never ran: the server reset it while
   * the soak's loop lagged). Match it by time instead: the unclaimed line of its server, not "fin" and with a
   * visitor port, logged between its start and `settleMs` after its end, closest to its end (the first such line
   * on a tie). Every visitor that opened claims its own line, so such lines are rare. Null if none fits.
   */
  claimByTime(server: number, startedAt: number, closedAt: number, settleMs: number): AccessLine | null {
    let best: { key: string; list: AccessLine[]; i: number; d: number } | null = null;
    for (const [key, list] of this.pending) {
      if (!key.startsWith(`${server}:`)) continue;
      list.forEach((a, i) => {
        // Lines without a visitor port (":0": the visitor was gone before the server read its address) never match.
        if (a.reason === "fin" || a.visitor.endsWith(":0") || a.at < startedAt || a.at > closedAt + settleMs) return;
        const d = Math.abs(a.at - closedAt);
        if (best === null || d < best.d) best = { key, list, i, d };
      });
    }
    if (best === null) return null;
    const { key, list, i } = best;
    return this.take(key, list, i);
  }

  /** Forgets lines read before `before` (wall-clock ms): nothing claims them any more. */
  prune(before: number): void {
    for (const [k, list] of this.pending) {
      const keep = list.filter((a) => a.at > before);
      if (keep.length === 0) this.pending.delete(k);
      else this.pending.set(k, keep);
    }
  }

  private take(key: string, list: AccessLine[], i: number): AccessLine {
    const a = list[i] as AccessLine;
    list.splice(i, 1);
    if (list.length === 0) this.pending.delete(key);
    return a;
  }
}
