/**
 * `GET /_api/v1/narinfos/recent`: the narinfos of the readable slices used last, newest first, with
 * the access rules of the lookups (a slice the token may not read never shows), the text a lookup
 * answers, and without recording reads (only what Nix reads keeps a path alive).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RECENT_NARINFOS_PATH } from '../../src/contracts/narinfo-batch.js';
import { newestHashParts } from '../../src/server/cache/recent-narinfos.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { DAY, TestClock } from '../support/retention.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../support/server.js';

const YAML = `
slices:
  - name: "\${repository}"
    read: [ {} ]
    write:
      - { event_name: push }
  - name: oss/tool
    public: true
    write:
      - { repository: oss/tool, event_name: push }
`;

const APP = { repository: 'acme/app', repository_id: '1001' };
const OTHER = { repository: 'other/thing', repository_id: '3001', repository_owner_id: '7001' };
const OSS = { repository: 'oss/tool', repository_id: '2001', repository_owner_id: '6001' };

const clock = new TestClock(Date.now());
let server: TestServer;
let appToken: string;
/** Two of the app's, one of the other repository's, one public; pushed a day apart in this order. */
let hash: { app1: string; app2: string; other: string; oss: string };

async function recent(token: string | null): Promise<{ status: number; text: string; hashParts: string[] }> {
  const response = await fetch(`${server.url}${RECENT_NARINFOS_PATH}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await response.text();
  const narinfos = response.ok ? (JSON.parse(text) as { narinfos: Record<string, string> }).narinfos : {};
  return { status: response.status, text, hashParts: Object.keys(narinfos) };
}

async function narinfoText(hashPart: string, token: string): Promise<string> {
  const response = await fetch(`${server.url}/${hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  return response.text();
}

beforeAll(async () => {
  server = await startTestServer({ yaml: YAML, clock: clock.now });
  appToken = await server.ciToken(APP);
  const uploads = await Promise.all(
    [1, 2, 3, 4].map(async () => narUploadFor((await nixBuild(randomChainExpr(1, 300)))[0] as string)),
  );
  const pushers = [appToken, appToken, await server.ciToken(OTHER), await server.ciToken(OSS)];
  for (const [i, upload] of uploads.entries()) {
    clock.set(clock.time + DAY);
    expect(await pushRaw(server.url, pushers[i]!, upload)).toEqual([201, 201]);
  }
  const [app1, app2, other, oss] = uploads.map((upload) => upload.hashPart) as [
    string,
    string,
    string,
    string,
  ];
  hash = { app1, app2, other, oss };
});
afterAll(async () => {
  await server?.close();
});

describe('the recent narinfos', () => {
  it('are those of the readable slices, newest first, each the text a lookup answers', async () => {
    const answer = await recent(appToken);
    expect(answer.status).toBe(200);
    // Public slices are readable by every token; the other repository's slice is not.
    expect(answer.hashParts).toEqual([hash.oss, hash.app2, hash.app1]);
    const narinfos = (JSON.parse(answer.text) as { narinfos: Record<string, string> }).narinfos;
    for (const hashPart of answer.hashParts)
      expect(narinfos[hashPart]).toBe(await narinfoText(hashPart, appToken));
    expect(answer.text).not.toContain(hash.other);

    const other = await recent(await server.ciToken(OTHER));
    expect(other.hashParts).toEqual([hash.oss, hash.other]);
  });

  it('without a token are the public slices only', async () => {
    const answer = await recent(null);
    expect(answer.status).toBe(200);
    expect(answer.hashParts).toEqual([hash.oss]);
  });

  it('put a path read since before those stored after it; listing them is not reading them', async () => {
    const otherToken = await server.ciToken(OTHER);
    expect((await recent(otherToken)).hashParts).toEqual([hash.oss, hash.other]);
    // A lookup reads the other repository's path, long after everything was stored...
    clock.set(clock.time + 30 * DAY);
    await narinfoText(hash.other, otherToken);
    // ...and a day later the app lists its recent narinfos, the public one among them.
    clock.set(clock.time + DAY);
    expect((await recent(appToken)).hashParts).toContain(hash.oss);
    // Had the listing counted as a read, the public path would now come first.
    expect((await recent(otherToken)).hashParts).toEqual([hash.other, hash.oss]);
  });

  it('refuse a bad token by name', async () => {
    const answer = await recent('not-a-token');
    expect(answer.status).toBe(401);
    expect(answer.text).toMatch(/token/);
  });
});

describe('merging the slices’ newest narinfos', () => {
  it('orders by last use across slices, lists each path once, and stops at the limit', () => {
    const a = [
      { hashPart: 'a', usedAt: 50 },
      { hashPart: 'shared', usedAt: 30 },
      { hashPart: 'b', usedAt: 10 },
    ];
    const b = [
      { hashPart: 'c', usedAt: 40 },
      { hashPart: 'shared', usedAt: 20 },
    ];
    expect(newestHashParts([a, b], 10)).toEqual(['a', 'c', 'shared', 'b']);
    expect(newestHashParts([a, b], 2)).toEqual(['a', 'c']);
    expect(newestHashParts([], 2)).toEqual([]);
  });
});
