/**
 * A NAR GET the server answers with a redirect (presigned downloads) is passed on to Nix, but only
 * to https, or to plain http on loopback: a server (or anyone on its path) cannot send Nix to a
 * plain-http address elsewhere.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { startDaemonBefore, type TestDaemon } from './helpers.js';

let hostile: Server;
let daemon: TestDaemon;
const NAR = `/nar/${'0'.repeat(52)}.nar.zst`;
const targets: Record<string, string> = {
  [`/nar/${'1'.repeat(52)}.nar.zst`]: 'https://bucket.example.org/cache/x.nar.zst?X-Amz-Signature=abc',
  [`/nar/${'2'.repeat(52)}.nar.zst`]: 'http://127.0.0.1:7480/cache/x.nar.zst?X-Amz-Signature=abc',
  [NAR]: 'http://10.1.2.3/cache/x.nar.zst?X-Amz-Signature=abc',
};

beforeAll(async () => {
  // The cache server's part here: every NAR GET redirects to the URL above.
  hostile = createServer((req, res) => {
    req.resume();
    const location = targets[req.url ?? ''];
    if (location) res.writeHead(302, { location, 'content-length': 0 }).end();
    else res.writeHead(404).end();
  });
  daemon = await startDaemonBefore(hostile);
});
afterAll(async () => {
  await daemon?.close();
  await new Promise((resolve) => hostile?.close(resolve));
});

it('passes on redirects to https and to loopback http; refuses plain http elsewhere with 502', async () => {
  for (const [path, location] of Object.entries(targets)) {
    const res = await fetch(`${daemon.url}${path}`, { redirect: 'manual' });
    if (location.startsWith('http://10.')) {
      expect(res.status).toBe(502);
      expect(await res.text()).toContain('redirected to a URL that is not https');
    } else {
      expect([res.status, res.headers.get('location')]).toEqual([302, location]);
    }
  }
});
