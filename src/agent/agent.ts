/** Agent role: keeps connections to every server and serves streams to allowlisted services. (Stub.) */
import type { AgentConfig } from "../config.ts";

/** A running agent. */
export interface AgentHandle {
  /** Graceful close to every server, waits for in-flight streams (bounded by TUNNEL_GRACEFUL_CLOSE_MAX_WAIT_MS). */
  close(graceful?: boolean): Promise<void>;
}

/** Starts the agent role. */
export async function startAgent(config: AgentConfig): Promise<AgentHandle> {
  void config;
  throw new Error("not implemented yet");
}
