/**
 * Real middleboxes for the WebSocket and proxy tests: nginx (TLS-terminating reverse proxy with the WebSocket
 * upgrade proxied, as README "Deploy behind nginx" configures it) and tinyproxy (HTTP CONNECT with Basic auth), each
 * run in the foreground from a config in a temp directory on a free loopback port. Both are required (CI installs
 * them: .ci/run); outside CI a missing one makes the caller skip with a message.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { nginxCommand, nginxConfig } from "../../scripts/lib/nginx.ts";

/** Path of an executable, or null. */
export function which(name: string): string | null {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]) {
    const p = join(dir, name);
    if (Bun.file(p).size > 0) return p;
  }
  return null;
}

/** Why the middlebox tests cannot run here (null: they can). In CI a missing tool is a failure, not a skip. */
export function missingMiddleboxes(): string | null {
  const missing = ["nginx", "tinyproxy"].filter((n) => which(n) === null);
  if (missing.length === 0) return null;
  const why = `${missing.join(" and ")} not installed (apt-get install -y nginx-light tinyproxy)`;
  if (process.env.CI) throw new Error(`CI must install the middleboxes: ${why}`);
  return why;
}

/** A loopback port that was free a moment ago (bound on port 0 and released). */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Waits until something accepts TCP connections on `port` (or the process exits / the deadline passes). */
async function waitListening(port: number, proc: Subprocess, timeoutMs = 5_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && proc.exitCode === null) {
    const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, connectError() {} } }).then(
      (s) => (s.end(), true),
      () => false,
    );
    if (ok) return true;
    await Bun.sleep(20);
  }
  return false;
}

/** A running middlebox. */
export interface Middlebox {
  readonly port: number;
  readonly dir: string;
  /** Its log so far. */
  log(): string;
  /** Kills it (SIGKILL) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same config. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `argv` (a foreground daemon listening on `port`), retrying on a fresh port when the port was taken. */
async function run(kind: string, config: (port: number, dir: string) => string, argv: (dir: string) => string[], logFile: string): Promise<Middlebox> {
  const dir = mkdtempSync(join(tmpdir(), `bc-${kind}-`));
  let port = 0;
  let proc: Subprocess | null = null;
  const spawn = async (): Promise<boolean> => {
    writeFileSync(join(dir, "conf"), config(port, dir));
    proc = Bun.spawn(argv(dir), { cwd: dir, stdout: "ignore", stderr: "ignore" });
    if (await waitListening(port, proc)) return true;
    proc.kill("SIGKILL");
    await proc.exited;
    return false;
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    port = freePort();
    if (await spawn()) break;
    if (attempt === 4) throw new Error(`${kind} did not start: ${safeRead(join(dir, logFile)).slice(-2000)}`);
  }
  const box: Middlebox = {
    get port() {
      return port;
    },
    dir,
    log: () => safeRead(join(dir, logFile)),
    async kill() {
      const p = proc as Subprocess | null;
      p?.kill("SIGKILL");
      await p?.exited;
    },
    async restart() {
      for (let i = 0; i < 50; i++) {
        if (await spawn()) return;
        await Bun.sleep(100); // the port may still be in use for a moment
      }
      throw new Error(`${kind} did not restart on port ${port}`);
    },
    async stop() {
      await box.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return box;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * nginx running deploy/nginx/backchannel.conf (scripts/lib/nginx.ts: its listen port, certificate and upstream
 * replaced): TLS terminated, the WebSocket upgrade at /backchannel proxied to 127.0.0.1:`upstream`.
 */
export function startNginx(opts: { upstream: number; cert: string; key: string }): Promise<Middlebox> {
  return run("nginx", (port, dir) => nginxConfig(dir, port, opts), (dir) => nginxCommand(which("nginx") as string, dir), "error.log");
}

/** tinyproxy allowing CONNECT from loopback with Basic auth `user`/`password`. */
export function startTinyproxy(opts: { user: string; password: string }): Promise<Middlebox> {
  const config = (port: number, dir: string) => `Port ${port}
Listen 127.0.0.1
Timeout 600
BasicAuth ${opts.user} ${opts.password}
Allow 127.0.0.1
LogLevel Info
LogFile "${dir}/tinyproxy.log"
PidFile "${dir}/tinyproxy.pid"
MaxClients 200
`;
  return run("tinyproxy", config, (dir) => [which("tinyproxy") as string, "-d", "-c", join(dir, "conf")], "tinyproxy.log");
}
