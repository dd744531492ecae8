/** What the admin endpoint needs from a role (server-view.ts, agent-view.ts), and the metrics both roles share. */
import pkg from "../../package.json" with { type: "json" };
import { handshakeStatusName } from "../protocol/constants.ts";
import type { MetricsRegistry } from "./metrics.ts";

/** A role as the admin endpoint sees it. Every call computes from live state. */
export interface AdminView {
  /** Why the role is not ready (503 on /readyz), or null when it is. */
  notReady(): string | null;
  /** The /api/status document (JSON-serialisable); `query` is the request's (the server pages its hosts by it). */
  status(query?: URLSearchParams): unknown;
  /** The /metrics text. */
  metrics(): string;
}

const startTimeSeconds = Math.round(Date.now() / 1000 - process.uptime());

/** Adds the build and process families every role exports. */
export function processMetrics(registry: MetricsRegistry, mode: "server" | "agent"): MetricsRegistry {
  return registry
    .gauge("backchannel_build_info", "Always 1; labels carry the version and the role.", () => [[{ version: pkg.version, mode }, 1]])
    .gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, seconds.", () => [[{}, startTimeSeconds]])
    .gauge("process_resident_memory_bytes", "Resident memory size, bytes.", () => [[{}, process.memoryUsage.rss()]]);
}

/** Label of a handshake status: its lower-case name (`auth_failed`), `no_response` for none, else the number. */
export function handshakeStatusLabel(status: number | "none"): string {
  if (status === "none") return "no_response";
  const name = handshakeStatusName(status);
  return name === "UNKNOWN" ? String(status) : name.toLowerCase();
}
