/**
 * The entrypoint: argv → config → server or agent; signals; exit codes. The only place that reads argv or calls
 * process.exit. Exit codes: 0 clean shutdown (or --help/--version), 1 startup/shutdown failure or a second signal,
 * 2 bad arguments or configuration.
 */
import { hostname } from "node:os";
import pkg from "../package.json" with { type: "json" };
import { helpText, loadConfig, redactConfig, type Config } from "./config.ts";
import { configureLogging, logger, type Logger } from "./log.ts";

/** What argv asked for; `errors` lists arguments that are not understood. */
interface Args { help: boolean; version: boolean; mode: string | undefined; errors: string[] }

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { help: false, version: false, mode: undefined, errors: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--help" || arg === "-h") args.help = true;
    else if (arg === "--version" || arg === "-v") args.version = true;
    else if (arg.startsWith("--mode=")) args.mode = arg.slice("--mode=".length);
    else if (arg === "--mode" && i + 1 < argv.length) args.mode = argv[++i];
    else args.errors.push(`unknown argument ${JSON.stringify(arg)}`);
  }
  return args;
}

/** Prints one message (a headline, then indented details) to stderr and exits 2. */
function usageError(headline: string, details: readonly string[]): never {
  process.stderr.write([`backchannel: ${headline}`, ...details.map((d) => `  ${d}`)].join("\n") + "\n");
  process.exit(2);
}

interface Handle { close(graceful?: boolean): Promise<void> }

/**
 * Starts the role, with its admin endpoint when TUNNEL_ADMIN_LISTEN is set. Only the role's own modules are loaded
 * (and the admin endpoint's only when it is on): code that is never loaded costs no resident memory.
 */
async function start(config: Config): Promise<Handle> {
  const admin = config.adminListen !== null ? await import("./admin/admin.ts") : null;
  if (config.mode === "server") {
    const { startServer } = await import("./server/server.ts");
    return startServer(config, admin ? { admin: (h) => admin.startServerAdmin(config, h) } : {});
  }
  const { startAgent } = await import("./agent/agent.ts");
  return startAgent(config, admin ? { admin: (h) => admin.startAgentAdmin(config, h) } : {});
}

/** First SIGTERM/SIGINT: graceful close, then exit 0 (1 if closing fails). A second one: exit 1 at once. */
function handleSignals(handle: Promise<Handle>, log: Logger): { readonly stopping: boolean } {
  const state = { stopping: false };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (state.stopping) {
      log.warn("second signal: exiting now", { signal });
      process.exit(1);
    }
    state.stopping = true;
    log.info("shutting down", { signal });
    handle
      .then((h) => h.close(true))
      .then(
        () => {
          log.info("stopped");
          process.exit(0);
        },
        (e: unknown) => {
          log.error("shutdown failed", { error: e });
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return state;
}

/** Runs the process; returns only by exiting. */
async function main(): Promise<void> {
  // Hidden test hook for scripts/soak/main.ts (not a TUNNEL_ variable, not in --help): BACKCHANNEL_DEBUG_GC_SIGNAL=SIGUSR2
  // makes that signal run a full GC, so that RSS sampled at rest measures live memory rather than garbage.
  if (process.env.BACKCHANNEL_DEBUG_GC_SIGNAL === "SIGUSR2") process.on("SIGUSR2", () => Bun.gc(true));
  const args = parseArgs(process.argv.slice(2));
  if (args.errors.length > 0) usageError("usage: backchannel --mode=server|agent (see --help)", args.errors);
  if (args.help) {
    process.stdout.write(`backchannel ${pkg.version}: ${pkg.description}\n\n${helpText()}`);
    process.exit(0);
  }
  if (args.version) {
    process.stdout.write(`${pkg.version}\n`);
    process.exit(0);
  }

  const loaded = loadConfig(process.env, args.mode, { isTTY: process.stdout.isTTY === true, hostname: hostname() });
  if (!loaded.ok) {
    const warnings = loaded.warnings.map((w) => `warning: ${w}`);
    usageError(`${loaded.error.message} (${loaded.error.code}; see --help):`, [...loaded.errors, ...warnings]);
  }
  const config = loaded.config;
  configureLogging({ level: config.logLevel, format: config.logFormat });
  const log = logger("main");
  const configLog = logger("config");
  for (const warning of loaded.warnings) configLog.warn(warning);
  log.info("starting", { version: pkg.version, config: redactConfig(config) });
  if (!config.tls) log.warn("TLS is off: traffic between agent and server is plaintext");

  // Signals are handled from the start: one arriving during startup closes the role once it is up.
  const handle = start(config);
  const signals = handleSignals(handle, log);
  try {
    await handle;
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    log.error("startup failed", { code: err.code ?? "ERR_INTERNAL", message: String(err.message ?? e), error: e });
    process.exit(1);
  }
  if (!signals.stopping) log.info("ready", { mode: config.mode, pid: process.pid });
}

await main();
