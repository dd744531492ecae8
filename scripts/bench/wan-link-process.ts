/**
 * The emulated WAN link (scripts/lib/wan-link.ts) as its own process, so that its timers do not share an event
 * loop with the load generators. Two ways to run it:
 *
 * - by the benchmark (`npm run bench -- --wan`), with an IPC channel: requests `{id, type: "configure", settings}`,
 *   `{id, type: "listen", targetPort}` and `{id, type: "stats"}`, each answered `{id, settings | port | stats}`;
 *   `{type: "ready"}` is sent once at start. {@link startLinkProcess} is the parent's side;
 * - by hand, to put any loopback service behind a link (e.g. an iperf3 server):
 *   `bun scripts/bench/wan-link-process.ts RTT_MS MBIT TARGET_PORT [TARGET_PORT...]` prints
 *   `listening LINK_PORT -> TARGET_PORT` per target and runs until interrupted.
 */
import type { Subprocess } from "bun";
import { WanLink, type LinkSettings, type LinkStats } from "../lib/wan-link.ts";

/** The parent's handle on a link process. */
export interface LinkProcess {
  pid: number;
  /** Applies new settings to every connection; resolves with the complete settings. */
  configure(s: LinkSettings): Promise<Required<LinkSettings>>;
  /** A new loopback port that forwards to `targetPort` through the link. */
  listen(targetPort: number): Promise<number>;
  stats(): Promise<LinkStats>;
  /** Resolves once nothing is queued, on the wire or held in the link; throws after `timeoutMs`. */
  waitIdle(timeoutMs?: number): Promise<void>;
}

interface Reply {
  id?: number;
  type: string;
  settings?: Required<LinkSettings>;
  port?: number;
  stats?: LinkStats;
  error?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Starts a link process with `settings`; `track` receives the process (for cleanup). Throws after 10 s. */
export async function startLinkProcess(track: { add(p: Subprocess): void }, settings: LinkSettings): Promise<LinkProcess> {
  const waiting = new Map<number, (r: Reply) => void>();
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const proc = Bun.spawn([process.execPath, new URL(import.meta.url).pathname], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    serialization: "json",
    ipc(m: Reply) {
      if (m.type === "ready") onReady();
      else if (m.id !== undefined) {
        waiting.get(m.id)?.(m);
        waiting.delete(m.id);
      }
    },
  });
  track.add(proc);
  let nextId = 1;
  const ask = (req: Record<string, unknown>) =>
    new Promise<Reply>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, (r) => (r.error ? reject(new Error(`link: ${r.error}`)) : resolve(r)));
      proc.send({ ...req, id });
    });
  await Promise.race([ready, sleep(10_000).then(() => Promise.reject(new Error("the link process did not start")))]);
  const link: LinkProcess = {
    pid: proc.pid,
    configure: async (s) => (await ask({ type: "configure", settings: s })).settings as Required<LinkSettings>,
    listen: async (targetPort) => (await ask({ type: "listen", targetPort })).port as number,
    stats: async () => (await ask({ type: "stats" })).stats as LinkStats,
    async waitIdle(timeoutMs = 20_000) {
      const deadline = performance.now() + timeoutMs;
      while (!(await link.stats()).idle) {
        if (performance.now() > deadline) throw new Error(`the link still carries bytes after ${timeoutMs} ms`);
        await sleep(20);
      }
    },
  };
  await link.configure(settings);
  return link;
}

function serveIpc(): void {
  let link: WanLink | null = null;
  process.on("message", (m: { id: number; type: string; settings?: LinkSettings; targetPort?: number }) => {
    try {
      if (m.type === "configure" && m.settings) {
        if (link === null) link = new WanLink(m.settings);
        process.send?.({ id: m.id, type: "configured", settings: link.configure(m.settings) });
      } else if (link === null) {
        throw new Error("not configured");
      } else if (m.type === "listen" && m.targetPort !== undefined) {
        process.send?.({ id: m.id, type: "listening", port: link.listen(m.targetPort) });
      } else if (m.type === "stats") {
        process.send?.({ id: m.id, type: "stats", stats: link.stats() });
      } else throw new Error(`unknown request ${m.type}`);
    } catch (e) {
      process.send?.({ id: m.id, type: "error", error: (e as Error).message });
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send?.({ type: "ready" });
}

function serveCli(argv: string[]): void {
  const [rtt, mbit, ...targets] = argv.map(Number);
  if (rtt === undefined || mbit === undefined || targets.length === 0 || [rtt, mbit, ...targets].some((n) => !Number.isFinite(n))) {
    console.error("usage: bun scripts/bench/wan-link-process.ts RTT_MS MBIT TARGET_PORT [TARGET_PORT...]");
    process.exit(2);
  }
  const link = new WanLink({ rttMs: rtt, mbit });
  const s = link.stats().settings;
  console.log(`link: ${s.rttMs} ms RTT, ${s.mbit} Mbit/s each way, queue ${s.queueBytes} bytes`);
  for (const t of targets) console.log(`listening ${link.listen(t)} -> ${t}`);
}

if (import.meta.main) {
  if (process.send) serveIpc();
  else serveCli(process.argv.slice(2));
}
