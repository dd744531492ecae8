/**
 * Outside tools for the benchmark (scripts/bench/main.ts): iperf3 and wrk as extra load generators, a throwaway `sshd`
 * + `ssh -R` as a peer tunnel, and socat relays as a C reference path for `--ceiling`. Each is used only when
 * installed; otherwise the caller prints the reason returned here. Every process started is handed to `track` so the
 * benchmark's cleanup stops it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** Processes started here, for the caller's cleanup. */
export interface Tracker {
  add(p: Subprocess): void;
  delete(p: Subprocess): void;
  tmpDir(d: string): void;
}

/** One outside load generator run against a port; metric name → value. */
export interface Extra {
  name: string;
  tool: string;
  run(port: number): Promise<Record<string, number>>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs a tool to completion and returns its stdout; throws with its last stderr line on a non-zero exit. */
export async function runTool(track: Tracker, args: string[], timeoutMs: number): Promise<string> {
  const p = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track.add(p);
  const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [text, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  track.delete(p);
  if (code !== 0) throw new Error(`${args[0]} exited ${code}: ${(err || text).trim().split("\n").slice(-1)[0]}`);
  return text;
}

/** iperf3 client for `secs` seconds; Gbit/s at the receiver. */
export function iperfExtra(track: Tracker, label: string, extraArgs: string[], secs: number): Extra {
  return {
    name: `iperf3 ${label}`,
    tool: "iperf3",
    async run(port) {
      const j = JSON.parse(await runTool(track, ["iperf3", "-c", "127.0.0.1", "-p", String(port), "-t", String(secs), "-J", ...extraArgs], 30_000));
      const bps = j.end?.sum_received?.bits_per_second;
      if (typeof bps !== "number") throw new Error(`iperf3 gave no result${j.error ? `: ${j.error}` : ""}`);
      return { "Gbit/s": bps / 1e9 };
    },
  };
}

/** wrk with one thread and 16 keep-alive connections for `secs` seconds. */
export function wrkExtra(track: Tracker, secs: number): Extra {
  return {
    name: "wrk 16 connections, keep-alive",
    tool: "wrk",
    async run(port) {
      const text = await runTool(track, ["wrk", "-t1", "-c16", `-d${secs}s`, "--latency", `http://127.0.0.1:${port}/`], 30_000);
      const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      const us = (re: RegExp) => {
        const m = re.exec(text);
        if (!m) return NaN;
        const v = Number(m[1]);
        return m[2] === "ms" ? v * 1000 : m[2] === "s" ? v * 1e6 : v;
      };
      return { "req/s": num(/Requests\/sec:\s+([\d.]+)/), "p50 µs": us(/50%\s+([\d.]+)(us|ms|s)/), "p99 µs": us(/99%\s+([\d.]+)(us|ms|s)/) };
    },
  };
}

/** Ports in LISTEN state on IPv4 (from /proc/net/tcp). */
function listening(): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && f[1]) ports.add(Number.parseInt(f[1].split(":")[1] ?? "", 16));
  }
  return ports;
}

async function waitListening(ports: number[], proc: Subprocess, what: string, stderr: () => string): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const l = listening();
    if (ports.every((p) => l.has(p))) return;
    if (proc.exitCode !== null) throw new Error(`${what} exited ${proc.exitCode}: ${stderr().trim().split("\n").slice(-1)[0] ?? ""}`);
    if (performance.now() > deadline) throw new Error(`${what}: not listening after 10 s`);
    await sleep(20);
  }
}

function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of stream) text = (text + dec.decode(chunk)).slice(-4_000);
  })().catch(() => {});
  return () => text;
}

/** Why `ssh -R` cannot be run here, or null if it can. */
export function sshMissing(): string | null {
  if (process.platform !== "linux") return "ssh -R: skipped, only set up on Linux";
  if (!Bun.which("ssh") || !Bun.which("ssh-keygen")) return "ssh -R: skipped, ssh not installed (apt-get install openssh-client)";
  if (!sshdPath()) return "ssh -R: skipped, no sshd on this machine (apt-get install openssh-server)";
  return null;
}

function sshdPath(): string | null {
  return Bun.which("sshd") ?? Bun.which("sshd", { PATH: "/usr/sbin:/sbin" });
}

/**
 * Starts a throwaway `sshd` on a free loopback port (its own host key, one authorized key, no PAM, no password)
 * and one `ssh -N -R` client with a remote forward per entry of `forward` (name → target port), default
 * cipher and settings otherwise. Returns name → the port on which sshd listens for that forward.
 * Throws with the reason if either process fails to come up.
 */
export async function startSshTunnel<K extends string>(
  track: Tracker,
  forward: Record<K, number>,
  freePort: () => number,
): Promise<Record<K, number>> {
  const sshd = sshdPath();
  if (!sshd) throw new Error("no sshd");
  const dir = mkdtempSync(join(tmpdir(), "backchannel-bench-ssh-"));
  track.tmpDir(dir);
  const keygen = (name: string) => {
    const r = Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, name)], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`ssh-keygen: ${r.stderr.toString().trim()}`);
  };
  keygen("host");
  keygen("client");
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client.pub")), { mode: 0o600 });
  // As root, sshd insists on its privilege separation directory (the package creates it only via systemd).
  if (process.getuid?.() === 0 && !existsSync("/run/sshd")) mkdirSync("/run/sshd", { mode: 0o755 });
  const sshPort = freePort();
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${sshPort}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      "AllowTcpForwarding yes",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const d = Bun.spawn([sshd, "-D", "-e", "-f", join(dir, "sshd_config")], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  track.add(d);
  await waitListening([sshPort], d, "sshd", collect(d.stderr));
  const user = Bun.spawnSync(["id", "-un"], { stdout: "pipe" }).stdout.toString().trim();
  const names = Object.keys(forward) as K[];
  const remote = Object.fromEntries(names.map((n) => [n, freePort()])) as Record<K, number>;
  const c = Bun.spawn(
    [
      "ssh", "-N", "-p", String(sshPort), "-i", join(dir, "client"),
      "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", `UserKnownHostsFile=${join(dir, "known_hosts")}`,
      "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
      ...names.flatMap((n) => ["-R", `127.0.0.1:${remote[n]}:127.0.0.1:${forward[n]}`]),
      `${user}@127.0.0.1`,
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  track.add(c);
  await waitListening(Object.values(remote) as number[], c, "ssh -R", collect(c.stderr));
  return remote;
}

/**
 * Two chains of socat relays (C, one forked process per connection, 512 KiB transfer blocks, TCP_NODELAY)
 * in front of each target port: a reference path with the same hops as server + agent. Returns the first
 * relay's port per name. Throws if socat is missing or does not come up.
 */
export async function startSocatRelays<K extends string>(
  track: Tracker,
  targets: Record<K, number>,
  freePort: () => number,
): Promise<Record<K, number>> {
  const socat = Bun.which("socat");
  if (!socat) throw new Error("socat not installed (apt-get install socat)");
  const names = Object.keys(targets) as K[];
  const first = Object.fromEntries(names.map((n) => [n, freePort()])) as Record<K, number>;
  const relay = async (from: number, to: number) => {
    const p = Bun.spawn(
      [socat, "-b", "524288", `TCP-LISTEN:${from},bind=127.0.0.1,reuseaddr,fork,nodelay`, `TCP:127.0.0.1:${to},nodelay`],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    track.add(p);
    await waitListening([from], p, "socat", collect(p.stderr));
  };
  for (const n of names) {
    const second = freePort();
    await relay(second, targets[n]);
    await relay(first[n], second);
  }
  return first;
}
