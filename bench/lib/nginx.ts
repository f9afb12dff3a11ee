/**
 * nginx (the Debian package) on loopback, with a config of its own (own pid, logs and temp dirs; the
 * system nginx config is never read): serving a directory of files (the lookup and substitution
 * baselines), or in front of a Sluice server, sending the NAR files it names.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ACCEL_REQUEST_HEADER } from '../../src/contracts/server-api.js';
import { freePort, startProcess, stopProcess, waitUntilServing } from './processes.js';

export const NGINX_INSTALL_HINT = 'apt-get install -y nginx-light   (Debian/Ubuntu; any nginx ≥ 1.19 works)';

export function findNginx(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((path) => existsSync(path));
}

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

export async function startNginx(binary: string, root: string, workDir: string): Promise<StaticServer> {
  return runNginx(
    binary,
    workDir,
    'nginx',
    `types { text/x-nix-narinfo narinfo; text/plain nix-cache-info; }
  default_type application/octet-stream;`,
    (port) => `server {
    listen 127.0.0.1:${port};
    root ${root};
  }`,
  );
}

/** The X-Accel-Redirect prefix the front and the server agree on (docs/operations.md). */
export const ACCEL_PREFIX = '/_sluice_nars/';

/**
 * nginx in front of a Sluice server as docs/operations.md sets one up for the files backend
 * ("nginx sends the NAR files"), without TLS: requests go to the server, and the NAR files the
 * server names with X-Accel-Redirect are sent by nginx from `narsDir`.
 */
export async function startNginxFront(
  binary: string,
  upstream: string,
  narsDir: string,
  workDir: string,
): Promise<StaticServer> {
  return runNginx(
    binary,
    workDir,
    'nginx in front of the server',
    `upstream sluice { server ${new URL(upstream).host}; keepalive 64; }`,
    (port) => `server {
    listen 127.0.0.1:${port};
    client_max_body_size 10g;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header ${ACCEL_REQUEST_HEADER} on;
    location / { proxy_pass http://sluice; }
    location ${ACCEL_PREFIX} { internal; alias ${narsDir}/; }
  }`,
  );
}

/** nginx with a config of its own in `workDir`, its `http` block holding `http` and `server(port)`. */
async function runNginx(
  binary: string,
  workDir: string,
  what: string,
  http: string,
  server: (port: number) => string,
): Promise<StaticServer> {
  mkdirSync(join(workDir, 'temp'), { recursive: true });
  const port = await freePort();
  const temp = (name: string) => `${name}_temp_path ${join(workDir, 'temp', name)};`;
  // As Debian ships it: one worker per core, sendfile; access log off as any cache operator would.
  const config = `
worker_processes auto;
pid ${join(workDir, 'nginx.pid')};
error_log ${join(workDir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  ${http}
  ${server(port)}
}
`;
  const configFile = join(workDir, 'nginx.conf');
  writeFileSync(configFile, config);
  const child = startProcess(
    binary,
    ['-p', workDir, '-e', join(workDir, 'error.log'), '-c', configFile, '-g', 'daemon off;'],
    join(workDir, 'nginx.out'),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilServing(child, url, what);
  return { url, close: () => stopProcess(child) };
}
