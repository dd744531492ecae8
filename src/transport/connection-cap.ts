/**
 * The cap on open connections (TUNNEL_MAX_CONNECTIONS): every listener that shares a ConnectionCap counts its
 * accepted sockets against it until they close, and closes a socket at once when the cap is reached, so the
 * process stays below its descriptor limit (where Bun's listener would retry a failing accept in a loop and spin)
 * and keeps answering. The default cap comes from the open-file limit, read from /proc/self/limits: neither Bun nor
 * Node exposes getrlimit.
 */
import { readFileSync } from "node:fs";

/** Descriptors kept free below the open-file limit besides the 10%: listeners, the admin endpoint, files, DNS. */
export const FD_HEADROOM = 64;

/** A shared count of open accepted connections with an upper bound. */
export class ConnectionCap {
  /** Accepted connections open now. */
  open = 0;
  /** Connections closed at accept because the cap was reached. */
  refused = 0;

  /** `limit`: open connections at most (Infinity: no cap). `onRefused` is told of each refusal. */
  constructor(
    readonly limit: number,
    private readonly onRefused: () => void = () => {},
  ) {}

  /** Takes a slot for a new connection; false (counted, reported) when the cap is reached. */
  tryAcquire(): boolean {
    if (this.open >= this.limit) {
      this.refused++;
      this.onRefused();
      return false;
    }
    this.open++;
    return true;
  }

  /** Gives a slot back (the connection closed). */
  release(): void {
    if (this.open > 0) this.open--;
  }
}

/** The soft open-file limit (RLIMIT_NOFILE) from `/proc/self/limits` text; null if absent or unlimited. */
export function parseOpenFileLimit(text: string): number | null {
  const m = /^Max open files\s+(\S+)\s+/m.exec(text);
  if (!m || m[1] === "unlimited") return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** This process's soft open-file limit (Linux: /proc/self/limits); null where it cannot be read. */
export function openFileLimit(path = "/proc/self/limits"): number | null {
  try {
    return parseOpenFileLimit(readFileSync(path, "utf8"));
  } catch {
    return null; // not Linux (or no /proc): the caller runs without a derived cap and says so
  }
}

/**
 * The default cap for an open-file limit: 90% of it less FD_HEADROOM (at least 1), or Infinity without a known limit.
 */
export function defaultConnectionCap(fdLimit: number | null): number {
  if (fdLimit === null) return Infinity;
  return Math.max(1, Math.floor(fdLimit * 0.9) - FD_HEADROOM);
}
