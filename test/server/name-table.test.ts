/** NameTable (server/name-table.ts): exact names first, then the longest *. suffix (one or more labels), then the default. */
import { expect, test } from "bun:test";
import { NameTable } from "../../src/server/name-table.ts";

test("exact beats wildcard, the longest wildcard suffix wins, the default takes the rest", () => {
  const t = new NameTable<string>().add("App.example.com", "exact").add("*.example.com", "wide").add("*.api.example.com", "api");
  expect(t.match("app.example.com")).toBe("exact");
  expect(t.match("x.example.com")).toBe("wide");
  expect(t.match("a.b.c.example.com")).toBe("wide");
  expect(t.match("v1.api.example.com")).toBe("api");
  expect(t.match("a.b.api.example.com")).toBe("api");
  expect(t.match("api.example.com")).toBe("wide");
  expect(t.match("example.com")).toBeNull();
  expect(t.match("xexample.com")).toBeNull();
  expect(t.match(null)).toBeNull();
  t.add(null, "default");
  expect(t.match("example.com")).toBe("default");
  expect(t.match(null)).toBe("default");
  expect(t.match(".example.com")).toBe("default"); // no label before the suffix
});
