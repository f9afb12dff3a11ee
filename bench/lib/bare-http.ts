/**
 * The floors of any proxy written on Node's HTTP server, each a bare `node:http` server in a
 * process of its own doing no work beyond answering: for lookups, the same short text to every
 * GET; for substitution, a closure's narinfos from memory and a redirect for every NAR GET, as the
 * proxy's NAR links do. Measured beside the proxy, they show how much of its time is Node's HTTP
 * server and the redirect itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StaticServer } from './nginx.js';
import { cpuSeconds, freePort, startProcess, stopProcess, waitUntilServing } from './processes.js';

/** About the size of a narinfo, so the writes cost what the proxy's answers cost. */
const SERVER_SCRIPT = `
const body = Buffer.from('StorePath: /nix/store/' + 'x'.repeat(400) + '\\n');
const headers = ['content-type', 'text/x-nix-narinfo', 'content-length', String(body.length)];
require('node:http')
  .createServer((request, response) => {
    response.writeHead(200, headers);
    response.end(body);
  })
  .listen(Number(process.argv[1]), '127.0.0.1');
`;

export interface BareHttpServer extends StaticServer {
  cpuSeconds(): number;
}

export async function startBareHttp(workDir: string): Promise<BareHttpServer> {
  const port = await freePort();
  const child = startProcess(
    process.execPath,
    ['-e', SERVER_SCRIPT, String(port)],
    join(workDir, 'bare-http.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilServing(child, url, 'the bare node:http server');
  return { url, cpuSeconds: () => cpuSeconds(child.pid!), close: () => stopProcess(child) };
}

/** Narinfos by request path from a JSON file; `/nar/…` redirected to the same path at a base URL. */
const REDIRECTOR_SCRIPT = `
const narinfos = new Map(Object.entries(JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'))));
const target = process.argv[3];
const info = 'StoreDir: /nix/store\\nWantMassQuery: 1\\nPriority: 30\\n';
require('node:http')
  .createServer((request, response) => {
    const path = request.url;
    const narinfo = path === '/nix-cache-info' ? info : narinfos.get(path);
    if (narinfo !== undefined) {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(narinfo) });
      response.end(narinfo);
    } else if (path.startsWith('/nar/')) {
      response.writeHead(302, { location: target + path, 'content-length': 0 });
      response.end();
    } else {
      response.writeHead(404, { 'content-length': 0 });
      response.end();
    }
  })
  .listen(Number(process.argv[1]), '127.0.0.1');
`;

/**
 * A bare redirecting proxy: `narinfos` (request path, e.g. `/<hash>.narinfo`, to text) answered from
 * memory, every NAR GET answered 302 to `target` + its path, where Nix fetches it.
 */
export async function startBareRedirector(
  workDir: string,
  narinfos: Record<string, string>,
  target: string,
): Promise<StaticServer> {
  const port = await freePort();
  const file = join(workDir, 'narinfos.json');
  writeFileSync(file, JSON.stringify(narinfos));
  const child = startProcess(
    process.execPath,
    ['-e', REDIRECTOR_SCRIPT, String(port), file, target.replace(/\/+$/, '')],
    join(workDir, 'bare-redirector.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitUntilServing(child, url, 'the bare redirecting node:http server');
  return { url, close: () => stopProcess(child) };
}
