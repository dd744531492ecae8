/**
 * One swarm process (spawned by scripts/scale/fleet.ts with an IPC channel): it receives its plan, resolves the
 * servers' name through the plan's DNS server when the plan says `dns:` (as an agent's TUNNEL_SERVER_DISCOVERY
 * does), runs the swarm and answers the fleet's requests. Messages: `plan` → `started` (with the addresses),
 * `mark` → `marked`, `report` → `report`, `stop` → `stopped`, then it exits.
 */
import { Resolver } from "node:dns/promises";
import { nowMs, Swarm, type SwarmPlan } from "./swarm.ts";

/** The servers' name, port and the DNS server to ask (ip:port). */
export interface DnsTarget {
  name: string;
  port: number;
  resolver: string;
}

/** Messages from the fleet. */
export type ToWorker =
  | { type: "plan"; plan: Omit<SwarmPlan, "servers"> & { servers: SwarmPlan["servers"]; dns: DnsTarget | null } }
  | { type: "mark" }
  | { type: "report"; full: boolean }
  | { type: "stop" };

/** The servers of a `dns:` target: every A record of the name, sorted. */
export async function resolveServers(d: DnsTarget): Promise<SwarmPlan["servers"]> {
  const r = new Resolver();
  r.setServers([d.resolver]);
  const addrs = await r.resolve4(d.name);
  return addrs.sort().map((host) => ({ host, port: d.port }));
}

if (import.meta.main) {
  let swarm: Swarm | null = null;
  const send = (m: unknown) => process.send?.(m);
  process.on("message", (raw: unknown) => {
    const m = raw as ToWorker;
    void (async () => {
      if (m.type === "plan") {
        const servers = m.plan.dns ? await resolveServers(m.plan.dns) : m.plan.servers;
        swarm = new Swarm({ ...m.plan, servers });
        const startedAt = nowMs();
        swarm.start();
        send({ type: "started", servers, startedAt });
      } else if (m.type === "mark") {
        swarm?.mark();
        send({ type: "marked" });
      } else if (m.type === "report") {
        send({ type: "report", report: swarm?.report(m.full) ?? null });
      } else if (m.type === "stop") {
        swarm?.stop();
        send({ type: "stopped" });
        setTimeout(() => process.exit(0), 300);
      }
    })().catch((e: unknown) => {
      send({ type: "error", message: (e as Error).message });
    });
  });
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready" });
}
