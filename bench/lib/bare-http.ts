/**
 * The floor of any proxy written on Node's HTTP server: a bare `node:http` server in a process of
 * its own that answers every GET with the same short text, doing no work at all. Measured beside
 * the proxy and nginx, it shows how much of the proxy's time is Node's HTTP server itself.
 */
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
