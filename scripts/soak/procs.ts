/**
 * Every process of the soak (servers, agents, the target and the soak itself), each restart a new generation, with
 * its descriptor and RSS samples: at rest at every checkpoint (the leak check compares them) and at peak under load.
 */
import type { Subprocess } from "bun";
import type { RoleProcess } from "../lib/roles.ts";
import { sampleProc, type ProcSample } from "../lib/proc.ts";

/** One generation of one process. */
export interface Proc {
  /** Stable role name, e.g. "server-0", "agent-2", "target", "soak". */
  name: string;
  /** 1 for the first process of this name, +1 per restart. */
  gen: number;
  pid: number;
  startedAt: number;
  /** Wall-clock ms it exited; 0 while running. */
  exitedAt: number;
  /** The soak stopped it on purpose (an exit is not a finding). */
  expectedExit: boolean;
  role: RoleProcess | null;
  sub: Subprocess | null;
  baseline: ProcSample | null;
  /** Where the baseline came from ("after warm-up", "own, checkpoint N", "predecessor #N"). */
  baselineFrom: string;
  checkpoints: ProcSample[];
  peakFds: number;
  peakRssKiB: number;
  /** Warning and error log lines by level, tag and message → count. */
  warnings: Map<string, number>;
}

/** The process list, oldest first. */
export class ProcTable {
  readonly all: Proc[] = [];

  /** `onUnexpectedExit` is called when a process exits that the soak did not stop. */
  constructor(private readonly onUnexpectedExit: (p: Proc, code: number | null) => void) {}

  /** The running process called `name`, if any. */
  live(name: string): Proc | undefined {
    for (let i = this.all.length - 1; i >= 0; i--) {
      const p = this.all[i] as Proc;
      if (p.name === name && p.exitedAt === 0) return p;
    }
    return undefined;
  }

  /** The newest process called `name`, running or not. */
  latest(name: string): Proc | undefined {
    for (let i = this.all.length - 1; i >= 0; i--) if ((this.all[i] as Proc).name === name) return this.all[i];
    return undefined;
  }

  /** Adds a new generation of `name` and follows its exit (the soak's own entry has neither `role` nor `sub`). */
  add(name: string, pid: number, role: RoleProcess | null, sub: Subprocess | null): Proc {
    const prev = this.latest(name);
    const p: Proc = {
      name,
      gen: prev ? prev.gen + 1 : 1,
      pid,
      startedAt: Date.now(),
      exitedAt: 0,
      expectedExit: false,
      role,
      sub,
      baseline: null,
      baselineFrom: "",
      checkpoints: [],
      peakFds: 0,
      peakRssKiB: 0,
      warnings: new Map(),
    };
    this.all.push(p);
    void exitOf(p)?.then((code) => {
      p.exitedAt = Date.now();
      if (role) role.lines.length = 0; // a long run restarts processes hundreds of times
      if (!p.expectedExit) this.onUnexpectedExit(p, code);
    });
    return p;
  }

  /** Updates the peak descriptors and RSS of every running process (the soak does so every 5 s under load). */
  samplePeaks(): void {
    for (const p of this.all) {
      if (p.exitedAt !== 0) continue;
      const s = sampleProc(p.pid);
      if (s === null) continue;
      p.peakFds = Math.max(p.peakFds, s.fds);
      p.peakRssKiB = Math.max(p.peakRssKiB, s.rssKiB);
    }
  }
}

/** Resolves with `p`'s exit code when it exits; null for the soak itself. */
export function exitOf(p: Proc): Promise<number | null> | null {
  return p.role ? p.role.proc.exited : p.sub ? p.sub.exited : null;
}
