/**
 * Picks the route of a visitor by the name it asked for (TLS server name or HTTP host), among the routes that share
 * one listen address: an exact name first, then the wildcard with the longest suffix (`*.` matches one or more
 * labels), then the default route (the one without a name). Case-insensitive. Which configurations are allowed
 * (no duplicates, no wildcard listed before a name it covers) is checked when the config is loaded
 * (config-routes.ts), so the table never has to choose between equals.
 */

/** A routing table of values `T` keyed by name patterns. */
export class NameTable<T> {
  private readonly exact = new Map<string, T>();
  /** By suffix including its leading dot: `*.example.com` is stored as `.example.com`. */
  private readonly wildcards = new Map<string, T>();
  private fallback: T | null = null;

  /** Adds `value` for `pattern` (`name`, `*.suffix`, or null for the default). A repeated pattern replaces. */
  add(pattern: string | null, value: T): this {
    if (pattern === null) this.fallback = value;
    else if (pattern.startsWith("*.")) this.wildcards.set(pattern.slice(1).toLowerCase(), value);
    else this.exact.set(pattern.toLowerCase(), value);
    return this;
  }

  /**
   * The value for `name` (already lower case, as the decoders return it; null: the visitor named none), or null
   * when nothing matches and there is no default. At most one map lookup per label of the name.
   */
  match(name: string | null): T | null {
    if (name === null) return this.fallback;
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    if (this.wildcards.size > 0) {
      // Leftmost dot first: the longest suffix wins. The suffix must leave at least one label before it.
      for (let dot = name.indexOf(".", 1); dot > 0; dot = name.indexOf(".", dot + 1)) {
        const hit = this.wildcards.get(name.slice(dot));
        if (hit !== undefined) return hit;
      }
    }
    return this.fallback;
  }
}
