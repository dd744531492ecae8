/**
 * deploy/: the Kubernetes manifests parse (Bun.YAML) with the expected kinds and fields, the systemd units pass
 * `systemd-analyze verify` (skipped, with the reason printed, where it is missing), and the configuration each
 * file sets up is valid for the real config loader.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Mode } from "../../src/config.ts";
import { outfileFor } from "../../scripts/build.ts";

const root = new URL("../../deploy/", import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), "utf8");

// --- Kubernetes ---

// Manifests are untyped documents; the tests index into them.
type Doc = any;
const manifests = (file: string): Doc[] => Bun.YAML.parse(read(`kubernetes/${file}`)) as Doc[];
const one = (docs: Doc[], kind: string, name?: string): Doc => {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  expect(found).toHaveLength(1);
  return found[0];
};
const envOf = (container: Doc): Record<string, string> =>
  Object.fromEntries((container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));

/** What the process sees: the container's env plus the Secret it loads with envFrom. */
function processEnv(docs: Doc[], container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom as { secretRef: { name: string } }[]) {
    Object.assign(env, one(docs, "Secret", from.secretRef.name).stringData);
  }
  return { ...env, ...envOf(container) };
}

function expectHardenedPod(deployment: Doc, mode: Mode): Doc {
  const pod = deployment.spec.template.spec;
  expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
  expect(pod.containers).toHaveLength(1);
  const c = pod.containers[0];
  expect(c.args).toEqual([`--mode=${mode}`]);
  expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
  // Probes on the admin port, which is TUNNEL_ADMIN_LISTEN's.
  const admin = (c.ports as { name: string; containerPort: number }[]).find((p) => p.name === "admin");
  expect(envOf(c).TUNNEL_ADMIN_LISTEN).toBe(`0.0.0.0:${admin?.containerPort}`);
  expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "admin" });
  expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "admin" });
  // Every secret volume is mounted, and the loader accepts what the container is given.
  for (const m of c.volumeMounts as { name: string }[]) expect(pod.volumes.some((v: Doc) => v.name === m.name)).toBe(true);
  return c;
}

describe("kubernetes", () => {
  test("websocket-ingress: an Ingress for the server's WebSocket path to a Service on the pods' ws port", () => {
    const docs = manifests("websocket-ingress.yaml");
    expect(docs.map((d) => d.kind).sort()).toEqual(["Ingress", "Service"]);
    const server = one(manifests("server.yaml"), "Deployment").spec.template.spec.containers[0];
    const env = envOf(server);
    const wsPort = (server.ports as { name: string; containerPort: number }[]).find((p) => p.name === "ws")?.containerPort;
    expect(env.TUNNEL_WS_LISTEN).toBe(`0.0.0.0:${wsPort}`);
    expect(env.TUNNEL_WS_TLS).toBe("off");
    const svc = one(docs, "Service");
    expect(svc.spec.ports[0].targetPort).toBe("ws");
    expect(svc.spec.selector).toEqual(one(manifests("server.yaml"), "Deployment").spec.template.metadata.labels);
    const path = one(docs, "Ingress").spec.rules[0].http.paths[0];
    expect(path).toMatchObject({ path: "/backchannel", pathType: "Exact", backend: { service: { name: svc.metadata.name, port: { name: "ws" } } } });
  });

  test("server: Deployment, headless Service for discovery, Service for routes, Secret, valid config", () => {
    const docs = manifests("server.yaml");
    expect(docs.map((d) => d.kind).sort()).toEqual(["Deployment", "Namespace", "PodDisruptionBudget", "Secret", "Service", "Service"]);
    for (const d of docs) expect(typeof d.apiVersion).toBe("string");
    const deployment = one(docs, "Deployment", "backchannel-server");
    const c = expectHardenedPod(deployment, "server");
    const env = processEnv(docs, c);
    const loaded = loadConfig(env, "server", { isTTY: false });
    expect(loaded).toMatchObject({ ok: true, warnings: [] });
    if (!loaded.ok || loaded.config.mode !== "server") throw new Error("unreachable");
    const config = loaded.config;
    // Secrets come from the Secret, not the pod spec.
    expect(envOf(c).TUNNEL_CLUSTERS).toBeUndefined();
    expect(envOf(c).TUNNEL_ADMIN_TOKEN).toBeUndefined();
    // The grace period outlasts the drain.
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.shutdownGraceMs);
    // TLS files come from the mounted secret.
    const tlsMount = (c.volumeMounts as { name: string; mountPath: string }[]).find((m) => m.name === "tls");
    expect(config.tlsCert?.startsWith(`${tlsMount?.mountPath}/`)).toBe(true);
    const ports = Object.fromEntries((c.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]));
    expect(ports.agents).toBe(config.listen.port);
    expect(config.routes.map((r) => r.listen.port)).toEqual([ports.web as number]);

    const podLabels = deployment.spec.template.metadata.labels;
    const headless = one(docs, "Service", "backchannel-server-agents");
    expect(headless.spec.clusterIP).toBe("None");
    expect(headless.spec.selector).toEqual(podLabels);
    expect(headless.spec.ports).toEqual([{ name: "agents", port: config.listen.port, targetPort: "agents" }]);
    const routes = one(docs, "Service", "backchannel-server");
    expect(routes.spec.selector).toEqual(podLabels);
    expect(routes.spec.ports.map((p: Doc) => p.targetPort)).toEqual(["web"]);
    expect(one(docs, "PodDisruptionBudget").spec.selector.matchLabels).toEqual(podLabels);
    for (const d of docs.filter((x) => x.kind !== "Namespace")) expect(d.metadata.namespace).toBe(one(docs, "Namespace").metadata.name);
  });

  test("agent: Deployment discovering servers by the headless Service's DNS name, Secret, valid config", () => {
    const docs = manifests("agent.yaml");
    const server = manifests("server.yaml");
    expect(docs.map((d) => d.kind).sort()).toEqual(["Deployment", "Secret"]);
    const deployment = one(docs, "Deployment", "backchannel-agent");
    const c = expectHardenedPod(deployment, "agent");
    const env = processEnv(docs, c);
    expect(envOf(c).TUNNEL_CREDENTIAL).toBeUndefined();
    const loaded = loadConfig(env, "agent", { isTTY: false, hostname: "pod-1" });
    expect(loaded).toMatchObject({ ok: true, warnings: [] });
    if (!loaded.ok || loaded.config.mode !== "agent") throw new Error("unreachable");
    const config = loaded.config;
    const headless = one(server, "Service", "backchannel-server-agents");
    expect(config.serverDiscovery).toEqual({
      kind: "dns",
      name: `${headless.metadata.name}.${headless.metadata.namespace}.svc.cluster.local`,
      port: headless.spec.ports[0].port,
    });
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.gracefulCloseMaxWaitMs);
    // The agent's credential is the server's cluster secret.
    const clusters = one(server, "Secret", "backchannel-server").stringData.TUNNEL_CLUSTERS as string;
    expect(clusters).toBe(`${config.cluster}=${config.credentialPolicy}:${config.credential}`);
  });

  test("the image is built from the binary scripts/build.ts writes", () => {
    expect(read("Dockerfile")).toContain(`ARG BINARY=${outfileFor("linux-x64")}\n`);
    const image = one(manifests("server.yaml"), "Deployment").spec.template.spec.containers[0].image;
    expect(read("Dockerfile")).toContain(`-t ${image} `);
  });
});

// --- systemd ---

/** `[Section]` → key → values (a key may repeat). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head !== null) {
      section = out[head[1] as string] = {};
      continue;
    }
    const eq = line.indexOf("=");
    if (section === null || eq < 0) throw new Error(`not a unit line: ${line}`);
    (section[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

/** The env file as the service sees it, plus the unit's Environment= (with %d as a credentials directory). */
function serviceEnv(unit: Record<string, Record<string, string[]>>, envFile: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const assignment of (unit.Service?.Environment ?? []).flatMap((e) => e.split(" "))) {
    const eq = assignment.indexOf("=");
    env[assignment.slice(0, eq)] = assignment.slice(eq + 1).replace("%d", "/run/credentials/backchannel.service");
  }
  for (const raw of read(`systemd/${envFile}`).split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    env[line.slice(0, eq)] = line.slice(eq + 1); // EnvironmentFile= overrides Environment=
  }
  return env;
}

const UNITS: [file: string, mode: Mode, envFile: string][] = [
  ["backchannel-server.service", "server", "server.env.example"],
  ["backchannel-agent.service", "agent", "agent.env.example"],
];

describe("systemd", () => {
  for (const [file, mode, envFile] of UNITS) {
    test(`${file}: restart, signals, hardening, and a valid example env file`, () => {
      const unit = parseUnit(read(`systemd/${file}`));
      const s = unit.Service ?? {};
      const single = (key: string) => {
        expect(s[key]).toHaveLength(1);
        return s[key]?.[0];
      };
      expect(single("ExecStart")).toBe(`/usr/local/bin/backchannel --mode=${mode}`);
      expect(single("EnvironmentFile")).toBe(`/etc/backchannel/${mode}.env`);
      expect(single("Restart")).toBe("on-failure");
      expect(single("RestartPreventExitStatus")).toBe("2");
      expect(single("KillSignal")).toBe("SIGTERM");
      for (const [key, value] of [["DynamicUser", "yes"], ["NoNewPrivileges", "yes"], ["ProtectSystem", "strict"],
        ["ProtectHome", "yes"], ["PrivateTmp", "yes"], ["RestrictNamespaces", "yes"], ["SystemCallFilter", "@system-service"]]) {
        expect(single(key as string)).toBe(value as string);
      }
      expect(s.MemoryDenyWriteExecute).toBeUndefined(); // Bun's JIT needs it off
      expect(unit.Install?.WantedBy).toEqual(["multi-user.target"]);

      const loaded = loadConfig(serviceEnv(unit, envFile), mode, { isTTY: false, hostname: "host-1" });
      expect(loaded).toMatchObject({ ok: true, warnings: [] });
      if (!loaded.ok) throw new Error("unreachable");
      const c = loaded.config;
      const graceMs = c.mode === "server" ? c.shutdownGraceMs : c.gracefulCloseMaxWaitMs;
      const stopSec = /^(\d+)s$/.exec(single("TimeoutStopSec") ?? "")?.[1];
      expect(Number(stopSec) * 1000).toBeGreaterThan(graceMs);
      // Every TLS path points into the credentials the unit loads.
      const creds = (s.LoadCredential ?? []).map((l) => l.slice(0, l.indexOf(":")));
      const paths = [c.tlsCert, c.tlsKey, c.tlsCa].filter((p): p is string => p !== null);
      expect(paths.length).toBeGreaterThan(0);
      for (const p of paths) expect(creds).toContain(p.slice(p.lastIndexOf("/") + 1));
    });
  }

  const analyze = Bun.which("systemd-analyze");
  if (analyze === null) console.log("skip: systemd-analyze verify: systemd-analyze is not installed here");
  test.skipIf(analyze === null)("systemd-analyze verify accepts both units without a warning", () => {
    // verify insists that ExecStart exists: point it at a stub in a scratch copy.
    const dir = mkdtempSync(join(tmpdir(), "backchannel-units-"));
    try {
      const stub = join(dir, "backchannel");
      writeFileSync(stub, "#!/bin/sh\nexit 0\n");
      chmodSync(stub, 0o755);
      for (const [file] of UNITS) writeFileSync(join(dir, file), read(`systemd/${file}`).replaceAll("/usr/local/bin/backchannel", stub));
      const r = Bun.spawnSync([analyze as string, "verify", ...UNITS.map(([f]) => join(dir, f))], { cwd: dir });
      const output = `${r.stdout.toString()}${r.stderr.toString()}`;
      expect(output).toBe("");
      expect(r.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
