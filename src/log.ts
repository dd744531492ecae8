/**
 * Logging: consola with one tag per module. `logger(tag)` may be called at import time; `configureLogging` (from
 * main, once the config is known) applies to every logger created before or after it.
 */
import { createConsola as createCoreConsola } from "consola/core";
import type { ConsolaInstance, ConsolaReporter, LogObject } from "consola";
import type { LogLevel } from "./config-types.ts";

/** Structured context for a log line, e.g. `{ streamId, cluster }`. Error values are serialised. */
export type LogFields = Record<string, unknown>;

/** A tagged logger. Methods never throw. */
export interface Logger {
  trace(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** True if `level` is currently written: lets hot paths skip building fields. */
  enabled(level: LogLevel): boolean;
}

/** Where log lines go. `isErr` is true for warn and error. Lines carry no trailing newline. */
export type LogSink = (line: string, isErr: boolean) => void;

/** consola level numbers (bun-platform.md §6): trace 5, debug 4, info 3, warn 1, error 0. */
const LEVELS: Record<LogLevel, number> = { trace: 5, debug: 4, info: 3, warn: 1, error: 0 };
const CORE_KEYS = ["time", "level", "tag", "msg"] as const;

const defaultSink: LogSink = (line, isErr) => {
  (isErr ? process.stderr : process.stdout).write(line + "\n");
};

/** Built on first use, so that a process configured for JSON never loads consola's reporters (below). */
let root: ConsolaInstance | null = null;
let generation = 0;

function rootLogger(): ConsolaInstance {
  root ??= build(process.env.NODE_ENV === "test" ? "warn" : "info", "pretty", undefined);
  return root;
}

/**
 * consola's full entry (its basic and fancy reporters), loaded only for `pretty`: it holds about 8 MiB of a
 * process's resident memory, while `consola/core` (all JSON output needs) holds under 3 (BENCHMARKS.md, idle RSS).
 */
function fullConsola(): typeof import("consola") {
  return require("consola") as typeof import("consola");
}

/**
 * Applies level and format to all loggers. `json` writes one JSON object per line (`time`, `level`, `tag`, `msg`,
 * then the fields); `pretty` uses consola's own reporter. Warnings and errors go to stderr, the rest to stdout,
 * unless `write` is given (tests capture output with it).
 */
export function configureLogging(opts: { level: LogLevel; format: "pretty" | "json"; write?: LogSink }): void {
  root = build(opts.level, opts.format, opts.write);
  generation++;
}

function build(level: LogLevel, format: "pretty" | "json", write: LogSink | undefined): ConsolaInstance {
  const sink = write ?? defaultSink;
  // throttle: 0 turns off consola's folding of repeated identical lines (it would hide a flood of the same warning).
  const options = { level: LEVELS[level], throttle: 0 };
  if (format === "json") return createCoreConsola({ ...options, reporters: [jsonReporter(sink)] });
  const { createConsola } = fullConsola();
  if (write === undefined) {
    const instance = createConsola(options);
    return instance.setReporters(instance.options.reporters.map(withoutTraceStacks));
  }
  const stream = (isErr: boolean) => ({ write: (s: string) => write(s.replace(/\n$/, ""), isErr) });
  // `fancy` is honoured by consola's node entry (what Bun loads); TS resolves the browser typings, which lack it.
  const plain = { fancy: false } as object;
  return createConsola({
    ...options,
    ...plain,
    stdout: stream(false) as unknown as NodeJS.WriteStream,
    stderr: stream(true) as unknown as NodeJS.WriteStream,
  });
}

/** consola's fancy reporter appends a stack trace to every `trace` line; show those lines in debug style instead. */
function withoutTraceStacks(reporter: ConsolaReporter): ConsolaReporter {
  return { log: (o, ctx) => reporter.log(o.type === "trace" ? { ...o, type: "debug" } : o, ctx) };
}

/** A consola reporter writing one JSON object per line. */
export function jsonReporter(write: LogSink): ConsolaReporter {
  return {
    log(o: LogObject) {
      write(toJsonLine(o), o.level < 2);
    },
  };
}

function toJsonLine(o: LogObject): string {
  const [first, ...rest] = o.args as unknown[];
  const core = { time: o.date.toISOString(), level: o.type, tag: o.tag, msg: typeof first === "string" ? first : "" };
  const fields: LogFields = typeof first === "string" || first === undefined ? {} : { value: first };
  for (const arg of rest) {
    if (arg instanceof Error) fields.error = arg;
    else if (arg !== null && typeof arg === "object") Object.assign(fields, arg);
    else if (arg !== undefined) fields.extra = arg;
  }
  for (const key of CORE_KEYS) if (key in fields) delete fields[key]; // fields cannot forge core keys
  try {
    return JSON.stringify({ ...core, ...fields }, jsonValue);
  } catch (e) {
    return JSON.stringify({ ...core, logError: `fields not serialisable: ${(e as Error).message}` });
  }
}

/** JSON.stringify replacer: Errors as {name, message, code, stack, cause}; bigints as strings. */
function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, code, stack: value.stack, cause: value.cause };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** A logger for module `tag` (e.g. "server", "mux"). Cheap to call at import time. */
export function logger(tag: string): Logger {
  let instance: ConsolaInstance | undefined;
  let seen = -1;
  const current = (): ConsolaInstance => {
    if (instance === undefined || seen !== generation) {
      instance = rootLogger().withTag(tag);
      seen = generation;
    }
    return instance;
  };
  const at = (level: LogLevel) => (message: string, fields?: LogFields) => {
    const c = current();
    if (LEVELS[level] > c.level) return;
    if (fields === undefined) c[level](message);
    else c[level](message, fields);
  };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: (level) => LEVELS[level] <= current().level,
  };
}
