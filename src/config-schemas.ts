/** Small valibot schema builders for TUNNEL_* values, around the parsers of config-parse.ts. Pure. */
import * as v from "valibot";
import { NAME_RE, NAME_TEXT, parseHostPort, type Parsed } from "./config-parse.ts";

/** Wraps a list parser as a valibot string schema: one issue per message. */
export function listSchema<T>(parse: (raw: string) => Parsed<T>) {
  return v.pipe(
    v.string(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const r = parse(dataset.value);
      if (r.ok) return r.value;
      for (const message of r.errors) addIssue({ message });
      return NEVER;
    }),
  );
}

/** A single host:port value as a valibot schema (see {@link parseHostPort}). */
export function hostPortSchema(opts: { allowPortZero: boolean; bareHost?: string }) {
  return v.pipe(
    v.string(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const r = parseHostPort(dataset.value, opts);
      if (typeof r !== "string") return r;
      addIssue({ message: r });
      return NEVER;
    }),
  );
}

/** Decimal integer in min..max (rejects "", "1e3", "0x10", "1.5": see bun-platform.md §6 on toNumber). */
export function intSchema(min: number, max: number, expected = `expected an integer ${min}..${max}`) {
  return v.pipe(
    v.string(),
    v.trim(),
    v.regex(/^[+-]?\d{1,16}$/, expected),
    v.transform(Number),
    v.minValue(min, expected),
    v.maxValue(max, expected),
  );
}

/** on|off, also true/false, yes/no, 1/0, any case. (Never v.toBoolean: it turns "false" into true.) */
export function boolSchema() {
  return v.pipe(
    v.string(),
    v.trim(),
    v.toLowerCase(),
    v.parseBoolean(
      { truthy: ["on", "true", "yes", "1"], falsy: ["off", "false", "no", "0"] },
      "expected on or off (also true/false, yes/no, 1/0)",
    ),
  );
}

/** One of `options`, case-insensitive. */
export function enumSchema<const T extends string>(options: readonly [T, ...T[]]) {
  return v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(options, `expected ${options.join(" or ")}`));
}

/** A name matching {@link NAME_RE}. */
export function nameSchema() {
  return v.pipe(v.string(), v.trim(), v.regex(NAME_RE, `expected a name matching ${NAME_TEXT}`));
}

/** A PEM file path. Rejects inline PEM so a pasted private key is never echoed or logged. */
export function pathSchema() {
  return v.pipe(
    v.string(),
    v.trim(),
    v.check((s) => !s.includes("-----BEGIN") && !s.includes("\n"), "expected a file path, not PEM content"),
  );
}

/** A secret string of at least `min` characters; messages never include the value. */
export function secretSchema(min: number) {
  return v.pipe(v.string(), v.trim(), v.minLength(min, `expected a secret of at least ${min} characters`));
}
