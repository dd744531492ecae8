/**
 * What the soak says and keeps: timestamped lines on stdout, findings (about processes and checkpoints) and
 * problems (about streams) for the verdict, and one log file per process in the log directory.
 */
import { join } from "node:path";
import type { FileSink } from "bun";

/** The soak's output and its lists of findings and problems. Times are seconds since `t0`. */
export class Journal {
  /** Wall-clock ms the soak started. */
  readonly t0 = Date.now();
  /** A process or a checkpoint misbehaved (each one fails the run). */
  readonly findings: string[] = [];
  /** A stream was corrupt, hung, failed unexplained, slowly or silently (each one fails the run). */
  readonly problems: string[] = [];

  /** Seconds from the start to `t`, one decimal. */
  elapsed(t = Date.now()): string {
    return ((t - this.t0) / 1000).toFixed(1);
  }

  /** Prints `line` to stdout after the time since the start. */
  say(line: string): void {
    process.stdout.write(`[${this.elapsed().padStart(7)}s] ${line}\n`);
  }

  /** Records and prints a finding. */
  finding(msg: string): void {
    this.findings.push(`${this.elapsed()}s ${msg}`);
    this.say(`FINDING: ${msg}`);
  }

  /** Records a problem; prints the first 200. */
  problem(msg: string): void {
    this.problems.push(`${this.elapsed()}s ${msg}`);
    if (this.problems.length <= 200) this.say(`PROBLEM: ${msg}`);
  }
}

/** One `<name>.log` file per process name in `dir`, opened on first use. */
export class LogFiles {
  private readonly writers = new Map<string, FileSink>();

  constructor(private readonly dir: string) {}

  /** The writer of `<name>.log`. */
  writer(name: string): FileSink {
    let w = this.writers.get(name);
    if (w === undefined) {
      w = Bun.file(join(this.dir, `${name}.log`)).writer();
      this.writers.set(name, w);
    }
    return w;
  }

  /** Flushes every file (the soak does so every second). */
  flushAll(): void {
    for (const w of this.writers.values()) void w.flush();
  }

  /** Flushes and closes every file. */
  async endAll(): Promise<void> {
    for (const w of this.writers.values()) await w.end();
  }
}
