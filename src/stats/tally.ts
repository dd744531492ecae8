/**
 * Stream tallies and the label helpers the roles' statistics share (server/stats.ts, agent/stats.ts) and the admin
 * views read back. Kept below the roles so they never import admin/.
 */
import { wireCodeName } from "../protocol/constants.ts";

/** Streams and bytes of a set of streams. `up`: visitor → target; `down`: target → visitor. */
export interface StreamTally {
  streams: number;
  upBytes: number;
  downBytes: number;
}

/** Adds one stream's bytes to the tally under `key` (creating it), in a Map or a WeakMap. */
export function addTally<K>(
  map: { get(key: K): StreamTally | undefined; set(key: K, value: StreamTally): unknown },
  key: K,
  upBytes: number,
  downBytes: number,
): void {
  const t = map.get(key);
  if (t === undefined) map.set(key, { streams: 1, upBytes, downBytes });
  else {
    t.streams++;
    t.upBytes += upBytes;
    t.downBytes += downBytes;
  }
}

/** Wire code name for counters: codes outside SPEC.md §5.2 share "UNKNOWN", so a peer cannot grow the maps. */
export function resetCodeLabel(code: number): string {
  const name = wireCodeName(code);
  return name.startsWith("UNKNOWN(") ? "UNKNOWN" : name;
}

/** Splits a `a\0b\0c` map key into its parts (the stats objects key maps this way). */
export function splitKey(key: string): string[] {
  return key.split("\u0000");
}
