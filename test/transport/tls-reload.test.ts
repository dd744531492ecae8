/** transport/tls-reload.ts: a changed file set is loaded once it settled; a failing set is logged once per change. */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TunnelError } from "../../src/errors.ts";
import { watchTlsFiles, type TlsReload } from "../../src/transport/tls-reload.ts";
import { waitFor } from "../support/net.ts";
import { captureLogs, type Capture } from "../support/security-logs.ts";

let dir: string;
let logs: Capture;
const watchers: TlsReload[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "backchannel-watch-"));
  logs = captureLogs("info");
});
afterEach(() => {
  for (const w of watchers.splice(0)) w.stop();
  logs.clear();
});
afterAll(() => {
  logs.restore();
  rmSync(dir, { recursive: true, force: true });
});

function files(): { cert: string; key: string } {
  const cert = join(dir, `${Math.random().toString(36).slice(2)}.pem`);
  const key = `${cert}.key`;
  writeFileSync(cert, "c0");
  writeFileSync(key, "k0");
  return { cert, key };
}

test("each change is loaded and applied once; nothing is loaded while the files stay the same", async () => {
  const f = files();
  let loads = 0;
  const applied: string[] = [];
  watchers.push(watchTlsFiles({
    files: [{ variable: "TUNNEL_TLS_CERT", path: f.cert }, { variable: "TUNNEL_TLS_KEY", path: f.key }],
    intervalMs: 5,
    load: async () => `${++loads}:${await Bun.file(f.cert).text()}`,
    apply: (m) => void applied.push(m),
  }));
  writeFileSync(f.cert, "c1");
  await waitFor(() => applied.length === 1, "the first change to be applied");
  writeFileSync(f.key, "k2");
  await waitFor(() => applied.length === 2, "the second change to be applied");
  // Many checks ran in between (5 ms apart), yet each change was loaded exactly once.
  expect(applied).toEqual(["1:c1", "2:c1"]);
  expect(logs.find("TLS files changed: new connections use them, established ones keep theirs")).toHaveLength(2);
});

test("a set that does not load is logged at error once per change, naming the variable; the next change retries", async () => {
  const f = files();
  let good = false;
  const applied: string[] = [];
  watchers.push(watchTlsFiles({
    files: [{ variable: "TUNNEL_TLS_CERT", path: f.cert }],
    intervalMs: 5,
    load: async () => {
      if (!good) throw new TunnelError("ERR_TLS_CONFIG", `TUNNEL_TLS_CERT: ${f.cert} holds no PEM certificate`);
      return "ok";
    },
    apply: (m) => void applied.push(m),
  }));
  writeFileSync(f.cert, "junk");
  const failed = () => logs.find("TLS files changed but cannot be used: keeping the material in use");
  await waitFor(() => failed().length === 1, "the error");
  expect(failed()[0]).toMatchObject({ level: "error", code: "ERR_TLS_CONFIG", files: ["TUNNEL_TLS_CERT"] });
  expect(String(failed()[0]?.reason)).toContain("TUNNEL_TLS_CERT");
  good = true;
  writeFileSync(f.cert, "fixed");
  await waitFor(() => applied.length === 1, "the fixed set to be applied");
  expect(failed()).toHaveLength(1);
});

test("a file that disappears is a failed change, not a crash", async () => {
  const f = files();
  const applied: string[] = [];
  watchers.push(watchTlsFiles({
    files: [{ variable: "TUNNEL_TLS_CA", path: f.cert }],
    intervalMs: 5,
    load: async () => await Bun.file(f.cert).text(),
    apply: (m) => void applied.push(m),
  }));
  rmSync(f.cert);
  await waitFor(() => logs.find("TLS files changed but cannot be used: keeping the material in use").length === 1, "the error");
  writeFileSync(f.cert, "back");
  await waitFor(() => applied.length === 1, "the file to be back");
  expect(applied).toEqual(["back"]);
});

test("interval 0 or no files: no watcher at all", () => {
  const never = () => {
    throw new Error("never");
  };
  expect(() => watchTlsFiles({ files: [], intervalMs: 5, load: never, apply: never }).stop()).not.toThrow();
  expect(() => watchTlsFiles({ files: [{ variable: "TUNNEL_TLS_CA", path: "/nonexistent" }], intervalMs: 0, load: never, apply: never }).stop()).not.toThrow();
});
