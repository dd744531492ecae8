/**
 * The admin HTTP endpoint (TUNNEL_ADMIN_LISTEN), on Bun.serve: /healthz, /readyz, /metrics (Prometheus text),
 * /api/status (JSON) and / (the live status page). With TUNNEL_ADMIN_TOKEN everything but /healthz and /readyz
 * needs `Authorization: Bearer <token>` (or HTTP Basic with the token as password, so a browser can log in).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { AgentConfig, HostPort, ServerConfig } from "../config.ts";
import type { ServerHandle } from "../server/server.ts";
import type { AgentHandle } from "../agent/agent.ts";
import { TunnelError } from "../errors.ts";
import { logger } from "../log.ts";
import { PAGE_CSP, PAGE_HTML } from "./page.ts";
import { serverView } from "./server-view.ts";
import { agentView } from "./agent-view.ts";
import type { AdminView } from "./view.ts";

const log = logger("admin");

/** A running admin endpoint. */
export interface AdminEndpoint {
  /** Bound port (useful with port 0). */
  readonly port: number;
  /** Stops listening and closes open admin connections. */
  stop(): Promise<void>;
}

/** Starts the admin endpoint of a server (pass as `startServer(config, { admin })`). Throws TunnelError ERR_LISTEN. */
export function startServerAdmin(config: ServerConfig, handle: ServerHandle): AdminEndpoint {
  return serveAdmin(config, serverView(config, handle));
}

/** Starts the admin endpoint of an agent (pass as `startAgent(config, { admin })`). Throws TunnelError ERR_LISTEN. */
export function startAgentAdmin(config: AgentConfig, handle: AgentHandle): AdminEndpoint {
  return serveAdmin(config, agentView(config, handle));
}

const sha256 = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Compares the request's credential with the token in constant time (both hashed, so lengths never leak). */
function authorized(req: Request, tokenHash: Buffer | null): boolean {
  if (tokenHash === null) return true;
  const header = req.headers.get("authorization") ?? "";
  let given: string | null = null;
  if (/^bearer /i.test(header)) given = header.slice(7).trim();
  else if (/^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    given = decoded.slice(decoded.indexOf(":") + 1); // the user name is ignored
  }
  return given !== null && timingSafeEqual(sha256(given), tokenHash);
}

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

function text(body: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...TEXT, ...headers } });
}

function route(req: Request, view: AdminView, tokenHash: Buffer | null): Response {
  if (req.method !== "GET" && req.method !== "HEAD") return text("method not allowed\n", 405, { allow: "GET, HEAD" });
  const url = new URL(req.url);
  const path = url.pathname;
  if (path === "/healthz") return text("ok\n");
  if (path === "/readyz") {
    const why = view.notReady();
    return why === null ? text("ready\n") : text(`not ready: ${why}\n`, 503);
  }
  if (!["/metrics", "/api/status", "/"].includes(path)) return text("not found\n", 404);
  if (!authorized(req, tokenHash)) {
    return text("unauthorized\n", 401, { "www-authenticate": 'Basic realm="backchannel admin", charset="UTF-8"' });
  }
  if (path === "/metrics") return text(view.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  if (path === "/api/status") {
    return new Response(JSON.stringify(view.status(url.searchParams)), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
  }
  return new Response(PAGE_HTML, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy": PAGE_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    },
  });
}

function addressText(a: HostPort, port: number): string {
  return `${a.host.includes(":") ? `[${a.host}]` : a.host}:${port}`;
}

function serveAdmin(config: ServerConfig | AgentConfig, view: AdminView): AdminEndpoint {
  const listen = config.adminListen;
  if (listen === null) throw new TunnelError("ERR_INTERNAL", "admin endpoint started without TUNNEL_ADMIN_LISTEN");
  const tokenHash = config.adminToken === null ? null : sha256(config.adminToken);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: listen.host,
      port: listen.port,
      development: false,
      // Explicit: with development off, Bun 1.4.5 otherwise lets a second process bind the same port (measured).
      reusePort: false,
      fetch: (req) => route(req, view, tokenHash),
      error(e) {
        log.error("admin request failed", { error: e });
        return text("internal error\n", 500);
      },
    });
  } catch (e) {
    const err = e as Error & { code?: string };
    throw new TunnelError("ERR_LISTEN", `admin: cannot listen on ${addressText(listen, listen.port)}: ${err.code ?? err.message}`, { cause: e });
  }
  const port = server.port ?? listen.port;
  log.info("admin listening", { address: addressText(listen, port), token: tokenHash !== null });
  return {
    port,
    async stop() {
      await server.stop(true);
    },
  };
}
