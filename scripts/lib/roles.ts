/**
 * Spawns Backchannel processes (the source entrypoint or a compiled binary) configured only by environment, and
 * reads their JSON log lines to learn bound ports and readiness. Used by the demo, benchmarks and e2e tests.
 */
import type { Subprocess } from "bun";

/** One JSON log line. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: string; tag?: string };

/** A running role process. */
export interface RoleProcess {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Every log line so far (stdout and stderr). */
  readonly lines: LogLine[];
  /** Resolves with the first log line matching `pred` (past or future); rejects after `timeoutMs` or on exit. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
}

/** The command that runs Backchannel from source with the Bun running this script. */
export function sourceCommand(mode: "server" | "agent"): string[] {
  return [process.execPath, new URL("../../src/main.ts", import.meta.url).pathname, `--mode=${mode}`];
}

/** Options for {@link spawnRole}. */
export interface SpawnOptions {
  /** Called with every log line as it arrives (raw text too), e.g. to follow access logs or write them to a file. */
  onLine?(line: LogLine, raw: string): void;
  /** Keep only the last this many lines in `lines` (default: all; long runs should bound it). */
  keepLines?: number;
}

/** Spawns `cmd` with exactly `env` (plus PATH) and JSON logging. */
export function spawnRole(cmd: string[], env: Record<string, string>, opts: SpawnOptions = {}): RoleProcess {
  const proc = Bun.spawn(cmd, {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TUNNEL_LOG_FORMAT: "json", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: LogLine[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const onLine = (text: string) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, level: "raw" };
    }
    lines.push(line);
    if (opts.keepLines !== undefined && lines.length > opts.keepLines * 2) lines.splice(0, lines.length - opts.keepLines);
    opts.onLine?.(line, text);
    for (const w of waiters) {
      if (w.pred(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (text) onLine(text);
      }
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return {
    proc,
    lines,
    waitForLog(pred, timeoutMs = 10_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (l: LogLine) => (clearTimeout(t), resolve(l)) };
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join("\n")}`));
        }, timeoutMs);
        waiters.add(w);
        void proc.exited.then((code) => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(t);
          reject(new Error(`process exited with ${code} before the log line; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join("\n")}`));
        });
      });
    },
    async stop(graceMs = 5_000) {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Port of "host:port". */
export function portOf(hostPort: string): number {
  return Number.parseInt(hostPort.slice(hostPort.lastIndexOf(":") + 1), 10); // "host:port" or "host:port/udp"
}

/**
 * Starts a server process and returns it with its bound agent port, route ports (in TUNNEL_ROUTES order) and, with
 * TLS on, the pin of its certificate (what agents give as TUNNEL_TLS_PIN).
 */
export async function startServerProcess(
  cmd: string[],
  env: Record<string, string>,
  opts: SpawnOptions = {},
): Promise<{ role: RoleProcess; agentPort: number; routePorts: number[]; tlsPin: string | null }> {
  const role = spawnRole(cmd, env, opts);
  const line = await role.waitForLog((l) => l.msg === "server listening");
  const routes = (line.routes as string[]).map((r) => portOf(r.slice(0, r.indexOf("="))));
  const tlsPin = typeof line.tlsPin === "string" ? line.tlsPin : null;
  return { role, agentPort: portOf(line.agents as string), routePorts: routes, tlsPin };
}
