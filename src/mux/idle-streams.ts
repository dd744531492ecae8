/**
 * Idle streams (SPEC.md §2.2, TUNNEL_STREAM_IDLE_TIMEOUT_MS): one clock per session ticks IDLE_TICKS times per
 * timeout, a stream stores the current tick whenever a byte moves (StreamCore.lastActive, one number store), and
 * each tick resets the streams whose last byte is more than IDLE_TICKS ticks old. No timer per stream.
 */
import { WireCode } from "../protocol/constants.ts";
import type { StreamCore } from "./stream-core.ts";

/** Ticks per timeout: a silent stream is reset after between 1 and 1 + 1/IDLE_TICKS timeouts. */
const IDLE_TICKS = 4;

/** Calls `tick` IDLE_TICKS times per `timeoutMs` (unref'd); null when the timeout is 0 or absent (off). */
export function startIdleClock(timeoutMs: number | undefined, tick: () => void): ReturnType<typeof setInterval> | null {
  if (timeoutMs === undefined || timeoutMs <= 0) return null;
  const timer = setInterval(tick, Math.max(1, Math.floor(timeoutMs / IDLE_TICKS)));
  timer.unref?.();
  return timer;
}

/** At tick `epoch`: resets with IDLE_TIMEOUT every stream whose last byte moved more than IDLE_TICKS ticks ago. */
export function resetIdleStreams(streams: Iterable<StreamCore>, epoch: number): void {
  for (const s of streams) if (epoch - s.lastActive > IDLE_TICKS) s.reset(WireCode.IDLE_TIMEOUT);
}
