/** TUNNEL_ROUTES with names (config-routes.ts): options, shared listen addresses, and each refused configuration named. */
import { describe, expect, test } from "bun:test";
import { groupByAddress, parseRoutes } from "../src/config-routes.ts";
import { loadConfig } from "../src/config.ts";

function errorsOf(raw: string): string[] {
  const r = parseRoutes(raw);
  return r.ok ? [] : r.errors;
}

describe("parsing", () => {
  test("sni= and host= take exact names and *. wildcards, in lower case; the route without is the default", () => {
    const r = parseRoutes("0.0.0.0:443=edge/web;sni=APP.example.com,0.0.0.0:443=edge/api;sni=*.Api.example.com,0.0.0.0:443=edge/any");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.map((x) => x.match)).toEqual([
      { kind: "sni", name: "app.example.com" }, { kind: "sni", name: "*.api.example.com" }, null,
    ]);
  });

  test.each([
    ["0.0.0.0:80=edge/web;sni=", "option sni expects a host name"],
    ["0.0.0.0:80=edge/web;host=*", "option host expects a host name"],
    ["0.0.0.0:80=edge/web;sni=*.com", 'option sni: a wildcard needs two or more labels after "*."'],
    ["0.0.0.0:80=edge/web;sni=a.*.com", "option sni expects a host name"],
    ["0.0.0.0:80=edge/web;sni=1.2.3.4", "option sni expects a host name"],
    ["0.0.0.0:80=edge/web;sni=-a.com", "option sni expects a host name"],
    [`0.0.0.0:80=edge/web;sni=${"a".repeat(64)}.com`, "option sni expects a host name"],
    ["0.0.0.0:80=edge/web;sni=a.com;host=a.com", "give one sni= or host= option per route"],
    ["0.0.0.0:80=edge/web;path=/x", 'unknown option "path"'],
  ])("%s is refused: %s", (raw, message) => {
    const errors = errorsOf(raw);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`entry "${raw}": ${message}`);
  });
});

describe("routes sharing a listen address", () => {
  test("distinct names and one default share it; plain routes elsewhere are unaffected", () => {
    expect(errorsOf("0.0.0.0:443=e/a;sni=a.example,0.0.0.0:443=e/b;sni=*.b.example,0.0.0.0:443=e/c,0.0.0.0:80=e/d")).toEqual([]);
  });

  test("an exact name listed before a wildcard covering it, and nested wildcards most specific first, are fine", () => {
    expect(errorsOf("0.0.0.0:443=e/a;sni=x.b.example,0.0.0.0:443=e/b;sni=*.x.b.example,0.0.0.0:443=e/c;sni=*.b.example")).toEqual([]);
  });

  test.each([
    ["two plain routes", "1.2.3.4:80=e/a,1.2.3.4:80=e/b", 'entry "1.2.3.4:80=e/b": listen address 1.2.3.4:80 is used by another route'],
    ["sni and host", "0.0.0.0:443=e/a;sni=a.example,0.0.0.0:443=e/b;host=b.example",
      "0.0.0.0:443: sni= and host= routes cannot share a listen address"],
    ["a name twice (any case)", "0.0.0.0:443=e/a;sni=a.example,0.0.0.0:443=e/b;sni=A.Example",
      '0.0.0.0:443: entry "0.0.0.0:443=e/b;sni=A.Example" repeats sni=a.example of entry "0.0.0.0:443=e/a;sni=a.example"'],
    ["a wildcard twice", "0.0.0.0:80=e/a;host=*.a.example,0.0.0.0:80=e/b;host=*.a.example", "repeats host=*.a.example"],
    ["a wildcard before an exact name it covers", "0.0.0.0:443=e/a;sni=*.example.com,0.0.0.0:443=e/b;sni=app.example.com",
      '0.0.0.0:443: sni=*.example.com (entry "0.0.0.0:443=e/a;sni=*.example.com") is listed before sni=app.example.com ' +
      '(entry "0.0.0.0:443=e/b;sni=app.example.com"), which it covers; list the more specific name first'],
    ["a wildcard before a narrower wildcard", "0.0.0.0:443=e/a;sni=*.example.com,0.0.0.0:443=e/b;sni=*.x.example.com",
      "sni=*.example.com (entry \"0.0.0.0:443=e/a;sni=*.example.com\") is listed before sni=*.x.example.com"],
    ["two defaults", "0.0.0.0:443=e/a;sni=a.example,0.0.0.0:443=e/b,0.0.0.0:443=e/c",
      '0.0.0.0:443: entry "0.0.0.0:443=e/b" and entry "0.0.0.0:443=e/c" are both default routes (no sni=/host=); keep one'],
  ])("%s: refused, naming the address and entries", (_name, raw, message) => {
    const errors = errorsOf(raw);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
  });

  test("a wildcard does not cover its own parent name (*.example.com does not match example.com)", () => {
    expect(errorsOf("0.0.0.0:443=e/a;sni=*.example.com,0.0.0.0:443=e/b;sni=example.com")).toEqual([]);
  });

  test("port 0: named routes on one host share one listener with its default; plain routes alone keep their own", () => {
    const r = parseRoutes("127.0.0.1:0=e/a,127.0.0.1:0=e/b;sni=b.example,127.0.0.1:0=e/c;sni=c.example,127.0.0.2:0=e/d,127.0.0.2:0=e/e");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(groupByAddress(r.value).map((g) => g.map((x) => x.service))).toEqual([["a", "b", "c"], ["d"], ["e"]]);
  });

  test("loadConfig names TUNNEL_ROUTES and every problem at once", () => {
    const r = loadConfig({
      TUNNEL_CLUSTERS: "e=none", TUNNEL_TLS: "off",
      TUNNEL_ROUTES: "0.0.0.0:443=e/a;sni=a.example,0.0.0.0:443=e/b;host=b.example,0.0.0.0:443=e/c;sni=a.example",
    }, "server", { isTTY: false });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const routes = r.errors.filter((e) => e.startsWith("TUNNEL_ROUTES"));
    expect(routes.join("\n")).toContain("sni= and host= routes cannot share a listen address");
    expect(routes.join("\n")).toContain("repeats sni=a.example");
  });
});
