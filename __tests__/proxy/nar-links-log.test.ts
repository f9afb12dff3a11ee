/**
 * The daemon's log is printed in the job's log by the post step, which anyone can read in a public
 * repository. A NAR links answer that does not parse is logged without its body: from a 200 it
 * may hold signed links, each a read right for a NAR until it expires.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { NAR_LINKS_PATH } from '../../src/contracts/nar-links.js';
import { startDaemonBefore, type TestDaemon } from './helpers.js';

const NAR = `nar/${'1'.repeat(52)}.nar.zst`;
const SIGNED = `${NAR}?sig=signed-read-right-for-this-nar`;
let server: Server;
let daemon: TestDaemon;

beforeAll(async () => {
  // A server whose links answer lacks `expires_in` (a version mismatch, a bug) and that serves NARs.
  server = createServer((req, res) => {
    req.resume();
    if (req.method === 'POST' && req.url === NAR_LINKS_PATH) {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ links: { [NAR]: SIGNED } }));
    } else if (req.url === `/${NAR}`) {
      res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': 3 }).end('nar');
    } else {
      res.writeHead(404).end();
    }
  });
  daemon = await startDaemonBefore(server);
});
afterAll(async () => {
  await daemon?.close();
  await new Promise((resolve) => server?.close(resolve));
});

it('streams the NAR and logs an unparsable links answer by its size, never its links', async () => {
  const res = await fetch(`${daemon.url}/${NAR}`, { redirect: 'manual' });
  expect([res.status, await res.text()]).toEqual([200, 'nar']);
  const log = daemon.logText();
  expect(log).toContain('NAR links answered unexpectedly');
  expect(log).not.toContain('signed-read-right');
});
