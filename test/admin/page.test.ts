/**
 * The status page in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
 * logs in with the admin token, sees the agent, watches the open-stream count go up and down while a visitor
 * streams, and saves screenshots to a temp dir. Skipped, with the reason printed, where Chromium is missing.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { chromium, type Browser, type Page } from "playwright-core";
import { startEchoServer } from "../support/net.ts";
import { agent, server, stopAll } from "../support/tunnel.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const TOKEN = "page-test-token-0123456789";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`skip: status page browser test: ${CHROMIUM} is missing (apt-get install -y chromium)`);

const echo = startEchoServer();
let browser: Browser | null = null;
afterEach(stopAll);
afterAll(async () => {
  await browser?.close();
  echo.stop();
});

/** Collects console errors and page errors (a CSP violation shows up as a console error). */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  return errors;
}

const text = (page: Page, id: string) => page.locator(`#${id}`).textContent();

test.skipIf(!haveChromium)("the page shows the agent and follows a stream opening and closing, live", async () => {
  const srv = await server({
    TUNNEL_CLUSTERS: "edge=none",
    TUNNEL_ROUTES: "127.0.0.1:0=edge/echo",
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_ADMIN_TOKEN: TOKEN,
  });
  const a = await agent(srv, {
    TUNNEL_CLUSTER: "edge",
    TUNNEL_HOSTNAME: "edge-page",
    TUNNEL_SERVICES: `echo=127.0.0.1:${echo.port}`,
    TUNNEL_ADMIN_LISTEN: "0",
    TUNNEL_ADMIN_TOKEN: TOKEN,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 20_000 });
  const context = await browser.newContext({
    httpCredentials: { username: "admin", password: TOKEN },
    viewport: { width: 1200, height: 800 },
  });
  const page = await context.newPage();
  const errors = watchErrors(page);
  const dir = mkdtempSync(join(tmpdir(), "backchannel-page-"));

  const response = await page.goto(`http://127.0.0.1:${srv.adminPort}/`);
  expect(response?.status()).toBe(200);
  await page.getByRole("cell", { name: "edge-page" }).first().waitFor({ timeout: 10_000 });
  expect(await page.getByRole("cell", { name: "edge-page" }).count()).toBe(2); // two data connections
  expect(await text(page, "peers")).toBe("1");
  expect(await text(page, "streams-open")).toBe("0");
  expect(await text(page, "ready")).toBe("ready");

  // A visitor streams for a while: the page's count goes to 1 without a reload, and the charts get data.
  let visitor: Socket<undefined> | null = await Bun.connect({ hostname: "127.0.0.1", port: srv.routePorts[0] as number, socket: { data() {} } });
  const chunk = new Uint8Array(256 * 1024).fill(1);
  const pump = setInterval(() => visitor?.write(chunk), 100);
  try {
    await page.locator("#streams-open", { hasText: /^1$/ }).waitFor({ timeout: 10_000 });
    await page.waitForTimeout(3_000); // a few samples of throughput for the chart
    expect(await page.locator("#chart-bytes polyline").count()).toBe(2);
    await page.screenshot({ path: join(dir, "server.png"), fullPage: true });
  } finally {
    clearInterval(pump);
  }
  visitor.end();
  visitor = null;
  await page.locator("#streams-open", { hasText: /^0$/ }).waitFor({ timeout: 10_000 });
  expect(Number(await text(page, "streams-total"))).toBe(1);

  // The agent's page: its server connection and service.
  await page.goto(`http://127.0.0.1:${a.adminPort}/`);
  await page.getByRole("cell", { name: `127.0.0.1:${srv.agentPort}` }).first().waitFor({ timeout: 10_000 });
  await page.getByRole("cell", { name: `127.0.0.1:${echo.port}` }).waitFor();
  expect(await text(page, "streams-total")).toBe("1");
  await page.screenshot({ path: join(dir, "agent.png"), fullPage: true });

  expect(errors).toEqual([]);
  console.log(`status page screenshots: ${join(dir, "server.png")} ${join(dir, "agent.png")}`);
}, 60_000);
