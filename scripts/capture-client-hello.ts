/**
 * Captures real TLS ClientHellos for the parser's tests (test/protocol/client-hello.test.ts): a loopback listener
 * records the first bytes each client sends until its ClientHello is complete, then closes the connection, and the
 * bytes are written to test/fixtures/client-hello/<name>.bin. Clients: curl, openssl s_client and headless
 * Chromium (Debian's /usr/bin/chromium), each asked for a server name that a fixture's test then expects.
 *
 *   npx bun scripts/capture-client-hello.ts [outDir]     (default test/fixtures/client-hello)
 *
 * Loopback only; every client is killed once its bytes are in (or after 20 s).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClientHelloDecoder } from "../src/protocol/client-hello.ts";

const NAME = "app.example.com";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** One capture: a file name and the command that connects to `port`. */
interface Client {
  file: string;
  cmd: (port: number, profile: string) => string[];
}

const CLIENTS: Client[] = [
  { file: "curl.bin", cmd: (p) => ["curl", "-sk", "--max-time", "15", "--resolve", `${NAME}:${p}:127.0.0.1`, `https://${NAME}:${p}/`] },
  { file: "curl-tls12.bin", cmd: (p) => ["curl", "-sk", "--max-time", "15", "--tls-max", "1.2", "--resolve", `${NAME}:${p}:127.0.0.1`, `https://${NAME}:${p}/`] },
  { file: "curl-ip-no-sni.bin", cmd: (p) => ["curl", "-sk", "--max-time", "15", `https://127.0.0.1:${p}/`] },
  { file: "openssl.bin", cmd: (p) => ["openssl", "s_client", "-connect", `127.0.0.1:${p}`, "-servername", NAME] },
  { file: "openssl-tls12.bin", cmd: (p) => ["openssl", "s_client", "-tls1_2", "-connect", `127.0.0.1:${p}`, "-servername", NAME] },
  { file: "openssl-noservername.bin", cmd: (p) => ["openssl", "s_client", "-connect", `127.0.0.1:${p}`, "-noservername"] },
  {
    file: "chromium.bin",
    cmd: (p, profile) => ["/usr/bin/chromium", ...CHROMIUM_ARGS, `--user-data-dir=${profile}`,
      `--host-resolver-rules=MAP ${NAME} 127.0.0.1`, "--dump-dom", `https://${NAME}:${p}/`],
  },
];

/** Listens on a loopback port and resolves with the first ClientHello's bytes (as received) of the first visitor. */
function captureOnce(): { port: number; bytes: Promise<Uint8Array>; stop(): void } {
  let resolve!: (b: Uint8Array) => void;
  const bytes = new Promise<Uint8Array>((r) => (resolve = r));
  const seen: Uint8Array[] = [];
  const decoder = new ClientHelloDecoder();
  let done = false;
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, chunk) {
        if (done) return;
        seen.push(new Uint8Array(chunk));
        if (decoder.push(chunk).status === "more") return;
        done = true;
        resolve(new Uint8Array(Buffer.concat(seen)));
        s.end();
      },
    },
  });
  return { port: l.port, bytes, stop: () => l.stop(true) };
}

async function capture(client: Client, outDir: string): Promise<void> {
  const cap = captureOnce();
  const profile = mkdtempSync(join(tmpdir(), "capture-profile-"));
  const proc = Bun.spawn(client.cmd(cap.port, profile), { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
  const timeout = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  try {
    const bytes = await Promise.race([cap.bytes, proc.exited.then(() => null)]);
    if (bytes === null) throw new Error(`${client.file}: the client exited before sending a ClientHello`);
    writeFileSync(join(outDir, client.file), bytes);
    console.log(`${client.file}: ${bytes.length} bytes`);
  } finally {
    clearTimeout(timeout);
    proc.kill("SIGKILL");
    await proc.exited;
    cap.stop();
    rmSync(profile, { recursive: true, force: true });
  }
}

const outDir = process.argv[2] ?? "test/fixtures/client-hello";
mkdirSync(outDir, { recursive: true });
for (const c of CLIENTS) await capture(c, outDir);
