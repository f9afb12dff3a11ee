/**
 * The daemon's port is open to every local process: what another process can do with it without
 * the job's credentials (issue 19, finding 4). Each request below is one the attack used; all get
 * a 401 that names the problem, and none reaches the cache server or changes anything.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorePath } from '../../src/nix/store-path.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { startTestDaemon, type TestDaemon } from './helpers.js';
import { startFront, startStack, type Stack } from './stack.js';

let stack: Stack;
let front: Awaited<ReturnType<typeof startFront>>;
let d: TestDaemon;
/** On the server: the attacker wants its narinfo and NAR. */
let privatePath: string;
/** Built locally, never pushed: the attacker wants the daemon to push it. */
let plantedPath: string;

beforeAll(async () => {
  stack = await startStack();
  front = await startFront(stack.server.url);
  const grant = await stack.cacheToken();
  d = await startTestDaemon({
    server: front.url,
    token: grant.token,
    tokenExpiresAt: grant.expiresAt,
    read: grant.read,
    write: grant.write,
    push: { enabled: true, upstreamCaches: [] },
  });
  privatePath = (await nixBuild(randomChainExpr(1, 512)))[0]!;
  plantedPath = (await nixBuild(randomChainExpr(1, 512)))[0]!;
  const seeded = await d.control('drain', { deadlineSeconds: 60, paths: [privatePath] });
  expect(seeded.json.pushed.paths).toBe(1);
});
afterAll(async () => {
  await d?.close();
  await front?.close();
  await stack?.close();
});

describe('a local process without the job credentials', () => {
  it('gets 401 for every cache and control route, and nothing reaches the server or changes', async () => {
    const hashPart = StorePath.parse(privatePath).hashPart;
    const narinfo = await (await fetch(`${d.url}/${hashPart}.narinfo`)).text();
    const narPath = /^URL: (.*)$/m.exec(narinfo)![1]!;
    const statsBefore = (await d.control('stats')).json;
    const upstreamBefore = front.requests.length;

    const attempts: [string, RequestInit][] = [
      // Reading the job's private path, as a fixed-output derivation did.
      [`${d.address}/nix-cache-info`, {}],
      [`${d.address}/${hashPart}.narinfo`, {}],
      [`${d.address}/${hashPart}.narinfo`, { method: 'HEAD' }],
      [`${d.address}/${narPath}`, {}],
      [`${d.address}/${'x'.repeat(43)}/${hashPart}.narinfo`, {}],
      [`${d.address}/${d.auth.controlSecret}/${hashPart}.narinfo`, {}],
      // Pushing a path of the attacker's choice into the job's slice.
      [`${d.address}/_sluice/built`, { method: 'POST', body: JSON.stringify({ outPaths: [plantedPath] }) }],
      [
        `${d.address}/_sluice/built`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${d.auth.cachePrefix}` },
          body: JSON.stringify({ outPaths: [plantedPath] }),
        },
      ],
      [`${d.address}/_sluice/drain`, { method: 'POST', body: '{"deadlineSeconds":5}' }],
      // Reading the stats and stopping the daemon.
      [`${d.address}/_sluice/stats`, {}],
      [`${d.address}/_sluice/health`, { headers: { authorization: 'Bearer wrong' } }],
      [`${d.address}/_sluice/shutdown`, { method: 'POST' }],
    ];
    for (const [url, init] of attempts) {
      const response = await fetch(url, init);
      const body = await response.text();
      expect({ url, status: response.status }).toEqual({ url, status: 401 });
      if (init.method !== 'HEAD') {
        expect(body).toMatch(/job's secret path|control secret/);
        expect(body).not.toContain('StorePath');
      }
    }

    // The daemon is still up, counted nothing, asked the server nothing and pushed nothing.
    expect(front.requests.length).toBe(upstreamBefore);
    const statsAfter = (await d.control('stats')).json;
    expect(statsAfter).toEqual(statsBefore);
    const drained = (await d.control('drain', { deadlineSeconds: 10 })).json;
    expect(drained.pushed.paths).toBe(1);
    const onServer = await fetch(`${stack.server.url}/${StorePath.parse(plantedPath).hashPart}.narinfo`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${(await stack.cacheToken()).token}` },
    });
    expect(onServer.status).toBe(404);
    // The log says requests were refused, and holds neither secret.
    expect(d.logText()).toContain('refused a request');
    expect(d.logText()).not.toContain(d.auth.cachePrefix);
    expect(d.logText()).not.toContain(d.auth.controlSecret);
  });

  it('is served with them: the secret path for Nix, the bearer secret for control', async () => {
    expect((await fetch(`${d.url}/nix-cache-info`)).status).toBe(200);
    expect((await d.control('health')).status).toBe(200);
    expect(JSON.parse(readFileSync(join(d.stateDir, 'ready.json'), 'utf8')).port).toBe(d.port);
  });
});
