/**
 * The live status page served at `/`: one self-contained HTML document (no external assets, so the binary works
 * offline). Its script polls `api/status` every second and redraws the tables and two inline SVG charts (open
 * streams, throughput) over the last five minutes. Data is inserted as text nodes only, never as HTML.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root { color-scheme: light dark; --fg: #1d232a; --muted: #66707a; --bg: #f6f7f9; --card: #fff; --line: #dde1e6;
  --up: #2f6fdb; --down: #d9822b; --ok: #1f8a4c; --bad: #c0392b; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7eb; --muted: #98a2ad; --bg: #14171b; --card: #1c2026;
  --line: #2c323a; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 12px; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 20px 0 8px; }
main { padding: 8px 20px 24px; max-width: 1200px; }
.badge { padding: 2px 8px; border-radius: 10px; color: #fff; font-size: 12px; background: var(--muted); }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); }
#meta, .muted, figcaption { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin: 12px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 10px; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
svg { width: 100%; height: 160px; display: block; }
svg text { fill: var(--muted); font-size: 11px; }
svg .grid { stroke: var(--line); }
svg .line { fill: none; stroke-width: 2px; vector-effect: non-scaling-stroke; }
svg .line.up { stroke: var(--up); } svg .line.down { stroke: var(--down); }
.legend span { margin-right: 12px; } .legend .up { color: var(--up); } .legend .down { color: var(--down); }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-ready { color: var(--ok); } .state-draining, .state-backoff, .state-dialing, .state-handshaking { color: var(--down); }
.state-stopped { color: var(--bad); }
#error { color: var(--bad); padding: 0 20px 16px; }
`;

const SCRIPT = `
"use strict";
const HISTORY = 300;
const samples = [];
let previous = null;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
}
function table(headers, numeric, rows) {
  const t = el("table");
  const head = el("tr");
  headers.forEach((h, i) => head.append(el("th", numeric.includes(i) ? "num" : "", h)));
  t.append(el("thead", "", head));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    r.forEach((v, i) => {
      const td = el("td", numeric.includes(i) ? "num" : "", v == null ? "–" : v);
      if (headers[i] === "State") td.classList.add("state-" + v);
      tr.append(td);
    });
    body.append(tr);
  }
  if (rows.length === 0) {
    const td = el("td", "muted", "none");
    td.colSpan = headers.length;
    body.append(el("tr", "", td));
  }
  t.append(body);
  return t;
}
function card(label, id, value) {
  const b = el("b", "", value);
  b.id = id;
  return el("div", "card", label, b);
}
function chart(id, series, format) {
  const root = $(id);
  const W = 600, H = 160, L = 4, T = 14, B = 16;
  root.setAttribute("viewBox", "0 0 " + W + " " + H);
  root.setAttribute("preserveAspectRatio", "none");
  let max = 1;
  for (const s of series) for (const v of s.values) max = Math.max(max, v);
  const nodes = [svg("line", { x1: L, x2: W, y1: H - B, y2: H - B, class: "grid" }),
    svg("line", { x1: L, x2: W, y1: T, y2: T, class: "grid" })];
  const top = svg("text", { x: L + 2, y: T - 3 }); top.textContent = format(max);
  const left = svg("text", { x: L + 2, y: H - 3 }); left.textContent = "-5 min";
  const right = svg("text", { x: W - 2, y: H - 3, "text-anchor": "end" }); right.textContent = "now";
  nodes.push(top, left, right);
  for (const s of series) {
    const n = s.values.length;
    const pts = s.values.map((v, i) => {
      const x = L + ((W - L) * (HISTORY - n + i)) / (HISTORY - 1);
      const y = H - B - ((H - B - T) * v) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    nodes.push(svg("polyline", { points: pts.join(" "), class: "line " + s.cls }));
  }
  root.replaceChildren(...nodes);
}
function render(s) {
  $("mode").textContent = s.mode + " " + s.version;
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.className = "badge " + (s.ready ? "ok" : "bad");
  $("meta").textContent = (s.mode === "agent" ? s.hostName + " in cluster " + s.cluster + " · " : "") +
    "up " + duration(s.uptimeSeconds) + " · updated " + new Date(s.now).toLocaleTimeString();
  const now = performance.now();
  let up = 0, down = 0;
  if (previous) {
    const dt = Math.max(0.001, (now - previous.at) / 1000);
    up = Math.max(0, (s.totals.upBytes - previous.up) / dt);
    down = Math.max(0, (s.totals.downBytes - previous.down) / dt);
  }
  previous = { at: now, up: s.totals.upBytes, down: s.totals.downBytes };
  samples.push({ open: s.totals.streamsOpen, up, down });
  if (samples.length > HISTORY) samples.shift();
  const peers = s.mode === "server"
    ? s.clusters.reduce((n, c) => n + c.agents, 0)
    : s.servers.filter((x) => x.ready).length + " / " + s.servers.length;
  $("cards").replaceChildren(
    card(s.mode === "server" ? "Agents" : "Servers ready", "peers", peers),
    card("Open streams", "streams-open", s.totals.streamsOpen),
    card("Streams total", "streams-total", s.totals.streamsTotal),
    card("Upstream", "rate-up", bytes(up) + "/s"),
    card("Downstream", "rate-down", bytes(down) + "/s"));
  chart("chart-streams", [{ values: samples.map((x) => x.open), cls: "up" }], (v) => String(Math.round(v)));
  chart("chart-bytes", [{ values: samples.map((x) => x.up), cls: "up" },
    { values: samples.map((x) => x.down), cls: "down" }], (v) => bytes(v) + "/s");
  const detail = [];
  if (s.mode === "server") {
    for (const c of s.clusters) {
      const agents = c.agents;
      const shown = c.hosts.length < c.hostsTotal ? "; the first " + c.hosts.length + " shown" : "";
      detail.push(el("h2", "", "Cluster " + c.name + " ", el("span", "muted", "(" + c.policy + ", " + agents +
        " agent" + (agents === 1 ? "" : "s") + ", " + c.hostsTotal + " connections" + shown + ")")));
      detail.push(table(["Agent", "Kind", "Connection", "Remote", "Weight", "Streams", "Total", "Upstream", "Downstream", "RTT ms",
        "Connected", "State"], [4, 5, 6, 7, 8, 9],
        c.hosts.map((h) => [h.hostName, h.kind, h.connectionId, h.remoteAddress, h.weight, h.streams, h.streamsTotal,
          bytes(h.upBytes), bytes(h.downBytes), h.rttMs, duration((Date.parse(s.now) - Date.parse(h.connectedAt)) / 1000) + " ago",
          h.kind === "raw" ? h.state : h.draining ? "draining" : "ready"])));
    }
    detail.push(el("h2", "", "Routes"));
    detail.push(table(["Listen", "Name", "Cluster", "Service", "Routed", "Open", "Total", "Refused"], [4, 5, 6, 7],
      s.routes.map((r) => [r.listen + (r.protocol === "udp" ? "/udp" : ""), r.name || null, r.cluster, r.service, r.routed, r.streamsOpen, r.streamsTotal, r.refused])));
  } else {
    detail.push(el("h2", "", "Servers"));
    const rows = [];
    for (const x of s.servers) for (const c of x.connections) {
      rows.push([x.server, c.slot, c.state, c.connectionId, c.rttMs, c.streams, c.reconnects]);
    }
    detail.push(table(["Server", "Slot", "State", "Connection", "RTT ms", "Streams", "Reconnects"], [1, 4, 5, 6], rows));
    detail.push(el("h2", "", "Services"));
    detail.push(table(["Service", "Target", "PROXY", "Open", "Total", "Upstream", "Downstream"], [3, 4, 5, 6],
      s.services.map((v) => [v.name, v.target + (v.protocol === "udp" ? "/udp" : ""), v.proxyProtocol || "off", v.streamsOpen, v.streamsTotal, bytes(v.upBytes),
        bytes(v.downBytes)])));
  }
  $("detail").replaceChildren(...detail);
}
async function tick() {
  try {
    const r = await fetch("api/status", { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    $("error").textContent = "";
  } catch (e) {
    $("error").textContent = "status unavailable: " + e.message;
    $("ready").textContent = "unreachable";
    $("ready").className = "badge bad";
  } finally {
    setTimeout(tick, 1000);
  }
}
tick();
`;

/** The status page. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backchannel status</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Backchannel <span id="mode"></span></h1><span id="ready" class="badge">loading</span><span id="meta"></span></header>
<main>
<section id="cards" class="cards"></section>
<section class="charts">
<figure><figcaption>Open streams, last 5 minutes</figcaption><svg id="chart-streams" role="img" aria-label="open streams"></svg></figure>
<figure><figcaption>Throughput, last 5 minutes <span class="legend"><span class="up">■ upstream</span><span class="down">■ downstream</span></span></figcaption><svg id="chart-bytes" role="img" aria-label="throughput"></svg></figure>
</section>
<section id="detail"></section>
</main>
<footer id="error"></footer>
<script>${SCRIPT}</script>
</body>
</html>
`;

const hash = (s: string): string => `'sha256-${createHash("sha256").update(s).digest("base64")}'`;

/** Content-Security-Policy for the page: its one inline script and style, fetches to itself, nothing else. */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
