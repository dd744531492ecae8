/**
 * Figures of a running process read from /proc (Linux): resident memory, CPU time and open descriptors. Shared by
 * the benchmark and the soak. Every reader returns 0 or null for a process that is gone; none throws.
 */
import { readFileSync, readdirSync } from "node:fs";

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100 on every mainstream Linux architecture. */
const CLK_TCK = 100;

/** VmRSS of `pid` in KiB, or null if the process is gone (0 if /proc/<pid>/status has no VmRSS line). */
function readRssKiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return null;
  }
}

/** VmRSS of `pid` in KiB; 0 if the process is gone. */
export function rssKiB(pid: number): number {
  return readRssKiB(pid) ?? 0;
}

/** VmHWM (peak resident memory) of `pid` in KiB; 0 if the process is gone. */
export function peakRssKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU time of `pid` (utime + stime from /proc/<pid>/stat) in seconds; 0 if the process is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces: utime and stime are 14 and 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Number of open file descriptors of `pid` (entries of /proc/<pid>/fd), or null if the process is gone. */
export function openFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** Descriptors and RSS of one process at one moment. */
export interface ProcSample {
  /** Wall-clock ms of the reading. */
  at: number;
  fds: number;
  rssKiB: number;
}

/** Open descriptors and RSS of `pid` now, or null if the process is gone. */
export function sampleProc(pid: number): ProcSample | null {
  const fds = openFds(pid);
  if (fds === null) return null;
  const rss = readRssKiB(pid);
  return rss === null ? null : { at: Date.now(), fds, rssKiB: rss };
}

/** Resident memory of `pid` split as /proc/<pid>/status reports it (KiB): anonymous, and file-backed (code pages). */
export interface RssSplit {
  rss: number;
  anon: number;
  file: number;
}

/** VmRSS, RssAnon and RssFile of `pid` in KiB; zeros if the process is gone. */
export function rssSplitKiB(pid: number): RssSplit {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: kib("VmRSS"), anon: kib("RssAnon"), file: kib("RssFile") };
  } catch {
    return { rss: 0, anon: 0, file: 0 };
  }
}
