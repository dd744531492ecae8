/** Server role: agent listener, cluster registry, route listeners. (Stub until the tunnel lands.) */
import type { ServerConfig } from "../config.ts";

/** A running server. */
export interface ServerHandle {
  /** Port the agent-facing listener is bound to (useful with port 0). */
  readonly agentPort: number;
  /** Bound port of each route, in TUNNEL_ROUTES order. */
  readonly routePorts: readonly number[];
  /** Stops listeners; with graceful, lets in-flight streams finish first (bounded by a deadline). */
  close(graceful?: boolean): Promise<void>;
}

/** Starts the server role. Throws TunnelError (ERR_LISTEN, ERR_TLS_CONFIG) if it cannot start. */
export async function startServer(config: ServerConfig): Promise<ServerHandle> {
  void config;
  throw new Error("not implemented yet");
}
