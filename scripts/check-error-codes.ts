/**
 * Checks that a test run reached every error code (issue 13): the suite runs with BACKCHANNEL_TRACE_ERRORS=FILE (every
 * process appends each ERR_* code it raises, see src/errors.ts); this compares FILE with ErrorCodes.
 *
 *   bun scripts/check-error-codes.ts FILE    exit 0 with a summary line, or 1 naming every code never raised
 */
import { readFileSync } from "node:fs";
import { ErrorCodes } from "../src/errors.ts";

/** The codes of ErrorCodes that `traced` (one code per line, repeats allowed) does not contain. */
export function unreachedCodes(traced: string): string[] {
  const seen = new Set(traced.split("\n").map((l) => l.trim()));
  return Object.keys(ErrorCodes).filter((c) => !seen.has(c));
}

if (import.meta.main) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error("usage: bun scripts/check-error-codes.ts FILE");
    process.exit(2);
  }
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // no file: no code was raised
  }
  const missing = unreachedCodes(text);
  if (missing.length > 0) {
    console.error(`error codes no test reached: ${missing.join(", ")}`);
    process.exit(1);
  }
  console.log(`check-error-codes: all ${Object.keys(ErrorCodes).length} codes raised by the test run`);
}
