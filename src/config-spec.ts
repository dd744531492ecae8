/** The shape of a row of the variable table (config-vars.ts) and the helpers that build rows. */
import type * as v from "valibot";
import type { Mode } from "./config-types.ts";

/** One documented variable (a row of `--help` and of the README table). */
export interface VariableDoc {
  /** The environment variable, `TUNNEL_*`. */
  readonly name: string;
  /** The modes that read it. */
  readonly modes: readonly Mode[];
  /** Expected syntax, e.g. `host:port`. */
  readonly syntax: string;
  /** The default as shown to users; `required` when there is none and the variable must be set. */
  readonly default: string;
  /** What it does, one sentence. */
  readonly meaning: string;
  /** A secret: never printed, echoed in errors, or logged (see redactConfig). */
  readonly secret: boolean;
}

export type StringSchema = v.GenericSchema<string, unknown>;

/** A table row plus how to parse it. */
export interface VarSpec<S extends StringSchema = StringSchema> extends Omit<VariableDoc, "name"> {
  /** Parses the raw (non-blank) value. Its messages read "expected …" and never contain the value. */
  readonly schema: S;
  /** Raw default fed through `schema` when the variable is unset; absent = no default (or a computed one). */
  readonly fallback?: string;
  /** Must be set (in its modes). */
  readonly required?: boolean;
  /** Messages already name the bad entry, so the formatter does not append the whole value. */
  readonly listValue?: boolean;
}

export const BOTH: readonly Mode[] = ["server", "agent"];
export const SERVER: readonly Mode[] = ["server"];
export const AGENT: readonly Mode[] = ["agent"];
export const HOUR_MS = 3_600_000;
export const MiB = 1024 * 1024;

export function spec<S extends StringSchema>(s: Omit<VarSpec<S>, "secret"> & { secret?: boolean }): VarSpec<S> {
  return { ...s, secret: s.secret ?? false };
}

/** A numeric default shown and applied as is (the protocol constant is its one source). */
export function defaulted(n: number): { default: string; fallback: string } {
  return { default: String(n), fallback: String(n) };
}
