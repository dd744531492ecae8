/**
 * nginx as the reverse proxy in front of TUNNEL_WS_LISTEN, from deploy/nginx/backchannel.conf (the block README
 * "Deploy" documents): a complete nginx.conf for a foreground, single-process nginx in `dir` on `port`, ending TLS
 * with `cert`/`key` and proxying the upgrade at /backchannel to 127.0.0.1:`upstream`. Used by the middlebox tests
 * (test/support/middleboxes.ts) and the benchmark (scripts/bench/websocket.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The deployed block without its comments. */
const DEPLOYED = readFileSync(new URL("../../deploy/nginx/backchannel.conf", import.meta.url), "utf8")
  .split("\n")
  .filter((l) => !/^\s*#/.test(l))
  .map((l) => l.replace(/\s+#.*$/, ""))
  .join("\n");

/** The nginx.conf text. Throws if deploy/nginx/backchannel.conf no longer has the lines it replaces. */
export function nginxConfig(dir: string, port: number, o: { upstream: number; cert: string; key: string }): string {
  const site = DEPLOYED.replace("listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`)
    .replace("/etc/nginx/tls/backchannel.crt", o.cert)
    .replace("/etc/nginx/tls/backchannel.key", o.key)
    .replace("http://127.0.0.1:8443", `http://127.0.0.1:${o.upstream}`);
  if (site.includes("8443") || site.includes("/etc/nginx")) throw new Error("deploy/nginx/backchannel.conf changed shape");
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${site}
}
`;
}

/** The command that runs nginx (at `bin`) with the config file `dir`/conf. */
export function nginxCommand(bin: string, dir: string): string[] {
  return [bin, "-p", dir, "-c", join(dir, "conf"), "-e", join(dir, "error.log")];
}
