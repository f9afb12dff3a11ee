/**
 * The operator docs' nginx example, as written in docs/operations.md, in front of two replicas on
 * S3 + PostgreSQL: Nix pushes and substitutes through it, and with one replica gone the other
 * answers through the same URL.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { sharedBackends } from '../support/backends.js';
import { nginxExample, startNginx, type RunningNginx } from '../support/nginx.js';
import { startTestServer, substituteFresh, writeNetrc, type TestServer } from '../support/server.js';
import { hashPart } from '../action/support.js';

let a: TestServer;
let b: TestServer;
let aClosed = false;
let nginx: RunningNginx;
let url: string;

beforeAll(async () => {
  const shared = await sharedBackends();
  [a, b] = await Promise.all([
    startTestServer({ yaml: shared.yaml }),
    startTestServer({ yaml: shared.yaml }),
  ]);
  // The doc's example with its addresses replaced by the test's.
  nginx = await startNginx((port) =>
    nginxExample('10.0.0.11:8080', [
      ['10.0.0.11:8080', new URL(a.url).host],
      ['10.0.0.12:8080', new URL(b.url).host],
      ['listen 443 ssl http2;', `listen 127.0.0.1:${port};`],
    ]),
  );
  url = nginx.url;
});
afterAll(async () => {
  nginx?.close();
  await Promise.all([aClosed ? undefined : a?.close(), b?.close()]);
});

it('Nix pushes and substitutes through nginx; with one replica stopped the other answers', async () => {
  const cache = { url, publicKey: a.publicKey };
  const pusher = makeNixMachine();
  const netrc = writeNetrc(pusher.dir, await a.ciToken());
  const [top] = await nixBuild(randomChainExpr(3, 6 * 1024 * 1024), pusher);
  await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}?compression=zstd`, top!], {
    machine: pusher,
  });
  const reader = await a.readToken(['acme/*']);
  expect((await substituteFresh(cache, top!, reader)).closure).toHaveLength(3);

  await a.close();
  aClosed = true;
  const lookup = await fetch(`${url}/${hashPart(top!)}.narinfo`, {
    headers: { authorization: `Bearer ${reader}` },
  });
  expect(lookup.status).toBe(200);
  expect((await substituteFresh(cache, top!, reader)).closure).toHaveLength(3);
});
