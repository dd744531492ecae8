/**
 * Certificate reload: a cheap periodic stat of the TLS files (device, inode, size, mtime, ctime; stat follows
 * symlinks, so cert-manager's and Kubernetes' swapped `..data` links count as a change). A changed set is loaded
 * once it has been unchanged for one more interval (a renewal that writes the certificate and the key one after
 * the other is not read half-done), then handed to `apply` for new connections. A set that does not load is
 * logged at error with the variable's name and the material in use is kept; the next change tries again.
 * Cost: one stat per file per interval, nothing else until a file changes. (On a file system with coarse
 * timestamps, an in-place rewrite of the same size within the same tick is not seen; a rename always is.)
 */
import { statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { logger } from "../log.ts";
import type { TlsFile } from "./tls.ts";

const log = logger("tls");

/** What to watch and what to do with a changed set. */
export interface TlsReloadOptions<T> {
  /** The files (empty: nothing to watch, the watcher does nothing). */
  files: readonly TlsFile[];
  /** Period of the check (ms); 0 turns reloading off. */
  intervalMs: number;
  /** Reads and checks the files; throws (TunnelError ERR_TLS_CONFIG naming the variable) if they are unusable. */
  load(): Promise<T>;
  /** Puts loaded material into use for new connections; may throw (logged at error, the old material stays). */
  apply(material: T): void;
}

/** A running watcher. */
export interface TlsReload {
  /** Stops the timer (idempotent). */
  stop(): void;
}

function describe(s: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

function signatureNow(files: readonly TlsFile[]): string {
  return files.map((f) => {
    try {
      return describe(statSync(f.path));
    } catch (e) {
      return `missing:${(e as { code?: string }).code ?? ""}`;
    }
  }).join("|");
}

async function signature(files: readonly TlsFile[]): Promise<string> {
  const parts = await Promise.all(files.map((f) => stat(f.path).then(describe, (e: { code?: string }) => `missing:${e.code ?? ""}`)));
  return parts.join("|");
}

/**
 * Starts watching. Call it before reading the files for the first time: the baseline is taken now, so a change
 * made while they are read is seen (and merely loaded once more).
 */
export function watchTlsFiles<T>(opts: TlsReloadOptions<T>): TlsReload {
  if (opts.files.length === 0 || opts.intervalMs <= 0) return { stop() {} };
  const variables = opts.files.map((f) => f.variable);
  let inUse = signatureNow(opts.files);
  let pending: string | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  const tick = async (): Promise<void> => {
    const now = await signature(opts.files);
    if (now === inUse) pending = null;
    else if (now !== pending) pending = now; // changed: wait one interval for the set to settle
    else {
      pending = null;
      inUse = now; // a set that fails is not retried until it changes again (one error per change)
      try {
        const material = await opts.load();
        if (stopped) return;
        opts.apply(material);
        log.info("TLS files changed: new connections use them, established ones keep theirs", { files: variables });
      } catch (e) {
        log.error("TLS files changed but cannot be used: keeping the material in use", {
          files: variables,
          code: (e as { code?: unknown }).code,
          reason: (e as Error).message,
        });
      }
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void tick().finally(schedule), opts.intervalMs);
    timer.unref?.();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}
