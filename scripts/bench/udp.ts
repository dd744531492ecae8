/**
 * The UDP part of `npm run bench` (issue 20): `iperf3 -u` through a /udp route (its control connection over a TCP
 * route on the same port) against iperf3 -u straight to the iperf3 server, at a ladder of offered rates; for each
 * path the highest offered rate whose loss stayed ≤ 1 %, and the loss at 200 Mbit/s (the target; rathole
 * published 217 Mbit/s on other hardware). Then TCP beside a flood: iperf3 (TCP) through a route on the same agent
 * connection, alone, while scripts/lib/udp-flood.ts sends from 10,000 source addresses to a second /udp route, and
 * while it sends the same flood to a plain UDP socket (the reference: on two cores the generator alone takes about
 * half the machine), interleaved (the "within 20 %"). `npm run bench -- --tests=udp` runs this part alone.
 */
import type { Subprocess } from "bun";
import { randomBytes } from "node:crypto";
import { spawnRole, startServerProcess } from "../lib/roles.ts";
import { cpuSeconds } from "../lib/proc.ts";
import { runTool } from "./extras.ts";
import { freePort, roleCommand } from "./processes.ts";
import type { TargetRow } from "./report.ts";
import type { Bench } from "./run.ts";

const HOST = "127.0.0.1";
const PATHS = ["direct", "tunnel"] as const;

/** What the UDP stage measured: per path, offered Mbit/s → { received Mbit/s, loss % }. */
export interface UdpFigures {
  results: Record<(typeof PATHS)[number], { offeredMbit: number; receivedMbit: number; lossPercent: number }[]>;
  /** TCP through the tunnel (Gbit/s), alone and beside the flood, one value per round. */
  tcp: { alone: number[]; flooded: number[]; plainSink: number[] };
  /** CPU seconds per second the flood generator used, per flooded run (tunnel, then plain socket). */
  generatorCpu: number[];
  errors: string[];
}

/** iperf3 TCP through `port` for `secs`: received Gbit/s. */
async function iperfTcp(b: Bench, port: number, secs: number): Promise<number> {
  const out = await runTool(b.kids, ["iperf3", "-c", HOST, "-p", String(port), "-t", String(secs), "-J"], 60_000);
  const doc = JSON.parse(out) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
  const bps = doc.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3: ${doc.error ?? "no result"}`);
  return bps / 1e9;
}

/**
 * TCP through the tunnel (`tcpPort`) alone, then beside a flood from 10,000 addresses at the /udp route `floodPort`
 * (its own service, a sink in this process), then beside the same flood sent to `sinkPort`, a plain UDP socket in
 * this process that reads and discards (the reference: what the flood costs this machine without the tunnel, its
 * generator and the kernel's receiving included), `rounds` times.
 */
async function tcpBesideFlood(b: Bench, f: UdpFigures, tcpPort: number, floodPort: number, sinkPort: number, rounds: number, secs: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    f.tcp.alone.push(await iperfTcp(b, tcpPort, secs));
    f.tcp.flooded.push(await besideFlood(b, f, tcpPort, floodPort, secs));
    f.tcp.plainSink.push(await besideFlood(b, f, tcpPort, sinkPort, secs));
  }
}

/** iperf3 TCP through `tcpPort` while scripts/lib/udp-flood.ts sends from 10,000 addresses to `floodPort`. */
async function besideFlood(b: Bench, f: UdpFigures, tcpPort: number, floodPort: number, secs: number): Promise<number> {
  const flood = Bun.spawn([process.execPath, new URL("../lib/udp-flood.ts", import.meta.url).pathname, String(floodPort), "10000"], { stdout: "pipe", stderr: "ignore" });
  b.kids.add(flood);
  try {
    await (flood.stdout as ReadableStream<Uint8Array>).getReader().read(); // "addresses 10000": the first round went out
    const cpu0 = cpuSeconds(flood.pid);
    const t0 = performance.now();
    const gbit = await iperfTcp(b, tcpPort, secs);
    f.generatorCpu.push((cpuSeconds(flood.pid) - cpu0) / ((performance.now() - t0) / 1000));
    return gbit;
  } finally {
    flood.kill();
    await flood.exited;
  }
}

async function iperfUdp(b: Bench, port: number, mbit: number, secs: number): Promise<{ receivedMbit: number; lossPercent: number }> {
  const out = await runTool(b.kids, ["iperf3", "-c", HOST, "-p", String(port), "-u", "-b", `${mbit}M`, "-l", "1400", "-t", String(secs), "-J"], 60_000);
  const sum = (JSON.parse(out) as { end: { sum: { bits_per_second: number; lost_percent: number } } }).end.sum;
  return { receivedMbit: (sum.bits_per_second * (1 - sum.lost_percent / 100)) / 1e6, lossPercent: sum.lost_percent };
}

/** Runs the ladder on both paths (rates interleaved); null when --tests leaves it out or iperf3 is missing. */
export async function runUdp(b: Bench): Promise<UdpFigures | null> {
  if (b.opts.only && !b.opts.only.includes("udp")) return null;
  const f: UdpFigures = { results: { direct: [], tunnel: [] }, tcp: { alone: [], flooded: [], plainSink: [] }, generatorCpu: [], errors: [] };
  if (Bun.which("iperf3") === null) {
    f.errors.push("udp: iperf3 is not installed (apt-get install iperf3)");
    return f;
  }
  const iperfPort = freePort();
  const iperf: Subprocess = Bun.spawn(["iperf3", "-s", "-B", HOST, "-p", String(iperfPort)], { stdout: "ignore", stderr: "ignore" });
  b.kids.add(iperf);
  const floodSink = await Bun.udpSocket({ hostname: HOST, socket: { data() {} } }); // the flood's service: discards
  try {
    const routePort = freePort();
    const floodPort = freePort();
    const cmd = roleCommand(b.opts);
    const secret = randomBytes(18).toString("base64url");
    const common = { TUNNEL_LOG_LEVEL: "warn", TUNNEL_TLS: "off", ...b.opts.tunnelEnv };
    const { role: server, agentPort } = await startServerProcess(cmd("server"), {
      ...common, TUNNEL_LOG_LEVEL: "info", TUNNEL_ACCESS_LOG: "off", TUNNEL_LISTEN: `${HOST}:0`,
      TUNNEL_CLUSTERS: `bench=token:${secret}`,
      TUNNEL_ROUTES: `${HOST}:${routePort}=bench/iperf-ctl,${HOST}:${routePort}/udp=bench/iperf,${HOST}:${floodPort}/udp=bench/flood`,
    }, { keepLines: 100 });
    b.kids.addRole(server);
    const agent = spawnRole(cmd("agent"), {
      ...common, TUNNEL_SERVERS: `${HOST}:${agentPort}`, TUNNEL_CLUSTER: "bench", TUNNEL_CREDENTIAL: secret,
      TUNNEL_HOSTNAME: "bench-udp", TUNNEL_CONNECTIONS: "1",
      TUNNEL_SERVICES: `iperf-ctl=${HOST}:${iperfPort},iperf=${HOST}:${iperfPort}/udp,flood=${HOST}:${floodSink.port}/udp`,
    }, { keepLines: 100 });
    b.kids.addRole(agent);
    await ready(b, routePort);
    const rates = b.opts.quick ? [200] : [100, 200, 300, 500, 800];
    const secs = b.opts.quick ? 2 : 5;
    for (const mbit of rates) {
      for (const [path, port] of [["direct", iperfPort], ["tunnel", routePort]] as const) {
        try {
          f.results[path].push({ offeredMbit: mbit, ...(await iperfUdp(b, port, mbit, secs)) });
        } catch (e) {
          f.errors.push(`udp ${path} ${mbit}M: ${(e as Error).message}`);
        }
      }
    }
    await tcpBesideFlood(b, f, routePort, floodPort, floodSink.port, b.opts.quick ? 1 : 3, b.opts.quick ? 2 : 3).catch((e: unknown) => {
      f.errors.push(`udp: TCP beside the flood: ${(e as Error).message}`);
    });
  } catch (e) {
    f.errors.push(`udp: ${(e as Error).message}`);
  } finally {
    iperf.kill();
    floodSink.close();
  }
  return f;
}

/** Waits until a short iperf3 -u run through the tunnel completes (agent connected, iperf3 listening). */
async function ready(b: Bench, port: number): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    try {
      await iperfUdp(b, port, 1, 1);
      return;
    } catch (e) {
      if (performance.now() > deadline) throw new Error(`UDP pair not ready: ${(e as Error).message}`);
      await Bun.sleep(200);
    }
  }
}

/** Highest offered rate with loss ≤ 1 %. */
function bestAtOnePercent(rows: UdpFigures["results"]["direct"]): number | null {
  const ok = rows.filter((r) => r.lossPercent <= 1);
  return ok.length === 0 ? null : Math.max(...ok.map((r) => r.offeredMbit));
}

/** Prints the UDP table; returns the target row (200 Mbit/s through the tunnel with loss ≤ 1 %). */
export function printUdp(b: Bench, f: UdpFigures | null): TargetRow[] {
  if (f === null) return [];
  b.out("\n## UDP: iperf3 -u, 1,400-byte datagrams (received Mbit/s, loss %)\n");
  b.out("| offered Mbit/s | direct | tunnel |\n|---|---|---|");
  for (const r of f.results.tunnel) {
    const d = f.results.direct.find((x) => x.offeredMbit === r.offeredMbit);
    const cell = (x?: { receivedMbit: number; lossPercent: number }) => (x ? `${x.receivedMbit.toFixed(0)} (${x.lossPercent.toFixed(2)} %)` : "–");
    b.out(`| ${r.offeredMbit} | ${cell(d)} | ${cell(r)} |`);
  }
  b.out(`\nHighest offered rate at ≤ 1 % loss: direct ${bestAtOnePercent(f.results.direct) ?? "none"} Mbit/s, tunnel ${bestAtOnePercent(f.results.tunnel) ?? "none"} Mbit/s (of those tried).`);
  const med = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)] ?? NaN;
  const tcpRatio = med(f.tcp.flooded) / med(f.tcp.alone);
  const isolation = med(f.tcp.flooded) / med(f.tcp.plainSink);
  if (f.tcp.alone.length > 0) {
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");
    b.out(`\nTCP (iperf3, 1 stream) through the same agent connection: alone ${list(f.tcp.alone)} Gbit/s; ` +
      `beside a flood from 10,000 source addresses at another /udp route ${list(f.tcp.flooded)} Gbit/s (medians: ${tcpRatio.toFixed(2)}× alone); ` +
      `beside the same flood at a plain UDP socket that only reads (what the flood costs this machine without the tunnel) ` +
      `${list(f.tcp.plainSink)} Gbit/s (${(med(f.tcp.plainSink) / med(f.tcp.alone)).toFixed(2)}× alone). ` +
      `Through the tunnel against the plain socket: ${isolation.toFixed(2)}×. The flood generator used ${list(f.generatorCpu)} CPU-s/s.`);
  }
  for (const e of f.errors) b.out(`- error: ${e}`);
  const at200 = f.results.tunnel.find((r) => r.offeredMbit === 200);
  return [{
    target: "UDP through the tunnel: 200 Mbit/s with loss ≤ 1 %",
    value: at200 ? `${at200.lossPercent.toFixed(2)} % loss` : "not measured",
    met: at200 ? at200.lossPercent <= 1 : null,
  }, {
    target: "TCP beside a UDP flood from 10,000 addresses ≥ 0.80× TCP alone (same agent connection)",
    value: Number.isFinite(tcpRatio) ? `${tcpRatio.toFixed(2)}×` : "not measured",
    met: Number.isFinite(tcpRatio) ? tcpRatio >= 0.8 : null,
  }, {
    target: "the same, against TCP beside the same flood at a plain UDP socket (the flood's cost without the tunnel)",
    value: Number.isFinite(isolation) ? `${isolation.toFixed(2)}×` : "not measured",
    met: Number.isFinite(isolation) ? isolation >= 0.8 : null,
  }];
}

/** The JSON part of the summary. */
export function udpSummary(f: UdpFigures | null): Record<string, unknown> | null {
  return f === null ? null : { figures: f.results, tcpBesideFlood: f.tcp, generatorCpu: f.generatorCpu, errors: f.errors };
}
