/**
 * Server discovery: `dns:name:port` re-resolves periodically (every A and AAAA record is a server; a Kubernetes
 * headless Service works this way) and `file:path` watches a file of `host:port` lines. Each produces full
 * snapshots; the agent reconciles its peers against them (new → connect, gone → drain). Errors keep the last
 * good snapshot (a DNS outage must not drop every server).
 */
import { Resolver } from "node:dns/promises";
import { watch, type FSWatcher } from "node:fs";
import type { ServerAddress, ServerDiscovery } from "../config.ts";
import { parseServerEntry } from "../config-net.ts";
import { logger } from "../log.ts";

const log = logger("discovery");

/**
 * Parses a servers file: one `host:port`, `wss://…` or `ws://…` (as TUNNEL_SERVERS) per line; blank lines and `#`
 * comments ignored. Bad lines are skipped.
 */
export function parseServersFile(text: string): { servers: ServerAddress[]; bad: string[] } {
  const servers: ServerAddress[] = [];
  const bad: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const server = parseServerEntry(line);
    if (typeof server === "string") bad.push(line);
    else servers.push(server);
  }
  return { servers, bad };
}

/** A running discovery source. */
export interface Discovery {
  stop(): void;
}

/** Options for {@link startDiscovery}. */
export interface DiscoveryOptions {
  intervalMs: number;
  /** DNS servers (`ip` or `ip:port`) to query instead of the system's. */
  dnsServers?: readonly string[];
  /** Receives each snapshot (also an unchanged one). */
  onSnapshot(servers: ServerAddress[]): void;
}

/** Starts a discovery source; the first snapshot is delivered as soon as it is known. */
export function startDiscovery(source: ServerDiscovery, opts: DiscoveryOptions): Discovery {
  return source.kind === "dns" ? startDns(source.name, source.port, opts) : startFile(source.path, opts);
}

function startDns(name: string, port: number, opts: DiscoveryOptions): Discovery {
  const resolver = new Resolver();
  if (opts.dnsServers && opts.dnsServers.length > 0) resolver.setServers([...opts.dnsServers]);
  let stopped = false;
  const settle = async <T>(p: Promise<T>): Promise<T | null> => p.then((v) => v, () => null);
  const poll = async () => {
    const [v4, v6] = await Promise.all([settle(resolver.resolve4(name)), settle(resolver.resolve6(name))]);
    if (stopped) return;
    if (v4 === null && v6 === null) {
      log.warn("DNS discovery failed, keeping the last servers", { name });
      return;
    }
    const hosts = [...new Set([...(v4 ?? []), ...(v6 ?? [])])].sort();
    opts.onSnapshot(hosts.map((host) => ({ host, port })));
  };
  void poll();
  const timer = setInterval(() => void poll(), opts.intervalMs);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

function startFile(path: string, opts: DiscoveryOptions): Discovery {
  let last = "";
  let stopped = false;
  const read = async () => {
    let text: string;
    try {
      text = await Bun.file(path).text();
    } catch (e) {
      if (!stopped) log.warn("servers file unreadable, keeping the last servers", { path, error: (e as Error).message });
      return;
    }
    if (stopped || text === last) return;
    last = text;
    const { servers, bad } = parseServersFile(text);
    if (bad.length > 0) log.warn("servers file has lines that are not host:port", { path, lines: bad.slice(0, 5) });
    opts.onSnapshot(servers);
  };
  void read();
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(path, () => void read());
  } catch {
    // The file may not exist yet; the poll below picks it up.
  }
  // Editors replace files (new inode) and watchers miss that: poll as well.
  const timer = setInterval(() => void read(), opts.intervalMs);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      watcher?.close();
    },
  };
}
