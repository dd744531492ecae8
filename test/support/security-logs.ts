/**
 * Log capture for security tests: routes every logger (src/log.ts) to memory as JSON lines at a chosen level, and
 * puts the test default (error, JSON to the console) back on restore.
 */
import { configureLogging } from "../../src/log.ts";
import type { LogLevel } from "../../src/config.ts";

/** One captured JSON log line. */
export type Line = Record<string, unknown> & { level: string; tag: string; msg: string };

/** Captured output. */
export interface Capture {
  /** Every line as written. */
  readonly raw: string[];
  /** Every line parsed. */
  readonly lines: Line[];
  /** Lines whose msg is `msg` (and, when given, whose fields match `fields`). */
  find(msg: string, fields?: Record<string, unknown>): Line[];
  clear(): void;
  restore(): void;
}

/** Starts capturing every log line at `level` and above. */
export function captureLogs(level: LogLevel = "debug"): Capture {
  const raw: string[] = [];
  const lines: Line[] = [];
  configureLogging({
    level,
    format: "json",
    write: (line) => {
      raw.push(line);
      try {
        lines.push(JSON.parse(line) as Line);
      } catch {
        lines.push({ level: "raw", tag: "", msg: line });
      }
    },
  });
  return {
    raw,
    lines,
    find: (msg, fields = {}) =>
      lines.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v)),
    clear() {
      raw.length = 0;
      lines.length = 0;
    },
    restore() {
      configureLogging({ level: (process.env.TEST_LOG_LEVEL ?? "error") as LogLevel, format: "json" });
    },
  };
}
