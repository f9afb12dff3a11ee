/**
 * Narinfo lookups through the daemon, gathered into batch requests to the real server: right hits
 * and misses for a burst (slices hold), misses remembered, a cache outage answered with 404s, a
 * server without the batch route asked one GET each, a token that expired refreshed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw } from '../support/server.js';
import { refusedUrl, startTestDaemon, type TestDaemon } from './helpers.js';
import { askedHashParts, startFront, startStack, type Stack } from './stack.js';
import { ManualClock } from '../support/clock.js';

const OTHER_OWNER = { repository: 'other/thing', repository_id: '3001', repository_owner_id: '7001' };
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

let stack: Stack;
/** Hash parts of paths acme/app can read, and one only another owner's slice holds. */
let readable: string[];
let unreadable: string;
const cleanups: (() => Promise<void>)[] = [];

function randomHash(): string {
  return Array.from({ length: 32 }, () => NIX32[Math.floor(Math.random() * 32)]).join('');
}

beforeAll(async () => {
  stack = await startStack();
  const uploads = await Promise.all(
    [1, 2, 3, 4].map(async () => narUploadFor((await nixBuild(randomChainExpr(1, 300)))[0] as string)),
  );
  const appToken = await stack.server.ciToken();
  for (const upload of uploads.slice(0, 3))
    expect(await pushRaw(stack.server.url, appToken, upload)).toEqual([201, 201]);
  const otherToken = await stack.server.ciToken(OTHER_OWNER);
  expect(await pushRaw(stack.server.url, otherToken, uploads[3]!)).toEqual([201, 201]);
  readable = uploads.slice(0, 3).map((upload) => upload.hashPart);
  unreadable = uploads[3]!.hashPart;
});
afterAll(async () => {
  await stack.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function daemonFor(
  server: string,
  extra: Record<string, unknown> = {},
  clock?: ManualClock,
): Promise<TestDaemon> {
  const grant = await stack.cacheToken();
  const d = await startTestDaemon(
    { server, token: grant.token, tokenExpiresAt: grant.expiresAt, ...extra },
    undefined,
    clock,
  );
  cleanups.push(() => d.close());
  return d;
}

interface Answer {
  hashPart: string;
  method: string;
  status: number;
  body: string;
}

/** All lookups at once, as Nix sends them over its parallel connections. */
function burst(url: string, lookups: { hashPart: string; method?: string }[]): Promise<Answer[]> {
  return Promise.all(
    lookups.map(async ({ hashPart, method = 'GET' }) => {
      const response = await fetch(`${url}/${hashPart}.narinfo`, { method });
      return { hashPart, method, status: response.status, body: await response.text() };
    }),
  );
}

async function signedText(hashPart: string): Promise<string> {
  const grant = await stack.cacheToken();
  const response = await fetch(`${stack.server.url}/${hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${grant.token}` },
  });
  expect(response.status).toBe(200);
  return response.text();
}

/** Hash parts named in the batch requests a front saw. */
const batchedHashParts = askedHashParts;

describe('narinfo lookups through the proxy', () => {
  it('answers a burst with the right hits and misses in a few batch requests, and remembers the misses', async () => {
    // A server without the narinfo set, the recent narinfos and the stream: every lookup is asked of
    // it in batch requests (narinfo-set.test.ts, recent-narinfos.test.ts, narinfo-stream.test.ts).
    const front = await startFront(stack.server.url, {
      refuseSet: true,
      refuseRecent: true,
      refuseStream: true,
    });
    cleanups.push(front.close);
    // Misses are remembered within the freshness bound (1 s): the clock stands still here.
    const d = await daemonFor(front.url, {}, new ManualClock().freeze());
    const misses = Array.from({ length: 30 }, randomHash);
    const lookups = [
      ...readable.map((hashPart) => ({ hashPart })),
      { hashPart: readable[0]!, method: 'HEAD' },
      { hashPart: readable[1]! }, // asked twice at once
      { hashPart: unreadable },
      ...misses.map((hashPart, i) => ({ hashPart, method: i % 3 === 0 ? 'HEAD' : 'GET' })),
    ];
    const answers = await burst(d.url, lookups);

    for (const answer of answers) {
      const hit = readable.includes(answer.hashPart);
      expect([answer.hashPart, answer.method, answer.status]).toEqual([
        answer.hashPart,
        answer.method,
        hit ? 200 : 404,
      ]);
      if (hit && answer.method === 'GET') expect(answer.body).toBe(await signedText(answer.hashPart));
      if (answer.method === 'HEAD') expect(answer.body).toBe('');
    }
    let stats = (await d.control('stats')).json;
    expect(stats).toMatchObject({ hits: 5, misses: 31, errors: [] });
    // Gathered: fewer requests than lookups, every hash part asked, none twice in one batch, no single GETs.
    expect(front.posted.length).toBeLessThan(lookups.length);
    expect(new Set(batchedHashParts(front))).toEqual(new Set(lookups.map((l) => l.hashPart)));
    for (const post of front.posted) {
      const hashParts = (JSON.parse(post.body) as { hashParts: string[] }).hashParts;
      expect(new Set(hashParts).size).toBe(hashParts.length);
    }
    expect(front.requests.filter((r) => r.includes('.narinfo'))).toEqual([]);

    // Misses are remembered (within the freshness bound): not asked again.
    const posts = front.posted.length;
    const again = await burst(d.url, [{ hashPart: misses[0]! }, { hashPart: unreadable }]);
    expect(again.map((a) => a.status)).toEqual([404, 404]);
    expect(front.posted.length).toBe(posts);
    stats = (await d.control('stats')).json;
    expect(stats.misses).toBe(33);
  });

  it('answers 404 when the server is down, records the error once per batch, and stops asking for a while', async () => {
    const d = await daemonFor(await refusedUrl());
    const answers = await burst(
      d.url,
      Array.from({ length: 10 }, () => ({ hashPart: randomHash() })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(404));
    expect(answers[0]!.body).toMatch(/the cache server is unreachable/);
    const stats = (await d.control('stats')).json;
    expect(stats.misses).toBe(10);
    expect(stats.hits).toBe(0);
    expect(stats.errors).toHaveLength(1);
    expect(stats.errors[0]).toMatch(/^narinfo lookup failed: .*ECONNREFUSED/);
    // Marked down: the next lookups are answered at once, not asked again.
    expect((await burst(d.url, [{ hashPart: readable[0]! }]))[0]!.body).toMatch(/unreachable/);
    expect((await d.control('stats')).json.errors).toEqual(stats.errors);
  });

  it('answers 404 and records the status when the server fails the batch, and asks again later', async () => {
    const front = await startFront(stack.server.url, {
      failures: 3, // the first try and both retries
      status: 500,
      failWhen: (method) => method === 'POST',
      refuseRecent: true,
      refuseStream: true,
    });
    cleanups.push(front.close);
    const d = await daemonFor(front.url);
    const [failed] = await burst(d.url, [{ hashPart: readable[0]! }]);
    expect(failed!.status).toBe(404);
    expect(failed!.body).toMatch(/the cache server answered HTTP 500/);
    expect(front.failed).toBe(3);
    const stats = (await d.control('stats')).json;
    expect(stats).toMatchObject({ hits: 0, misses: 1 });
    expect(stats.errors).toEqual([expect.stringMatching(/^narinfo lookup answered HTTP 500: busy/)]);
    // A failed lookup is not remembered as a miss: once the server answers, it is a hit.
    expect((await burst(d.url, [{ hashPart: readable[0]! }]))[0]!.status).toBe(200);
  });

  it('asks a server without the batch route one GET per narinfo', async () => {
    const front = await startFront(stack.server.url, {
      failures: 1000,
      status: 404,
      // Older than the batch route, so older than the narinfo set and the recent narinfos too.
      failWhen: (method, url) =>
        (method === 'POST' && url === '/_api/v1/narinfos') || url === '/_api/v1/narinfo-set',
      refuseRecent: true,
      refuseStream: true,
    });
    cleanups.push(front.close);
    const d = await daemonFor(front.url);
    const miss = randomHash();
    const answers = await burst(d.url, [
      { hashPart: readable[0]! },
      { hashPart: readable[1]!, method: 'HEAD' },
      { hashPart: miss },
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 404]);
    expect(answers[0]!.body).toBe(await signedText(readable[0]!));
    expect(front.requests.filter((r) => r.startsWith('GET /') && r.endsWith('.narinfo')).sort()).toEqual(
      [readable[0]!, readable[1]!, miss].map((h) => `GET /${h}.narinfo`).sort(),
    );
    // Found out once; later lookups go straight to GETs.
    await burst(d.url, [{ hashPart: readable[2]! }]);
    expect(front.failed).toBe(2);
    expect((await d.control('stats')).json).toMatchObject({ hits: 3, misses: 1, errors: [] });
    expect(d.logText()).toContain('the cache server has no batch narinfo lookups');
  });
});

describe('token refresh on lookups', () => {
  let shortStack: Stack;
  const clock = new ManualClock();
  beforeAll(async () => {
    shortStack = await startStack('token_ttl: 3s', clock.now);
  });
  afterAll(async () => {
    await shortStack.close();
  });

  it('gets a new token when the server refuses an expired one, and answers the lookups', async () => {
    const upload = await narUploadFor((await nixBuild(randomChainExpr(1, 300)))[0] as string);
    expect(await pushRaw(shortStack.server.url, await shortStack.server.ciToken(), upload)).toEqual([
      201, 201,
    ]);
    const grant = await shortStack.cacheToken();
    // Every lookup goes to the server as a batch request: what the expired token is refused on.
    const front = await startFront(shortStack.server.url, { refuseRecent: true, refuseStream: true });
    cleanups.push(front.close);
    const d = await startTestDaemon(
      {
        server: front.url,
        token: grant.token,
        // The daemon believes the token lives an hour, so only the server's 401 can tell it expired.
        tokenExpiresAt: new Date(Date.now() + 3_600_000).toISOString(),
        idTokenRequest: {
          url: shortStack.server.issuer.runner.url,
          token: shortStack.server.issuer.runner.token,
        },
      },
      undefined,
      clock,
    );
    cleanups.push(() => d.close());
    expect((await burst(d.url, [{ hashPart: upload.hashPart }]))[0]!.status).toBe(200);
    clock.advance(4_000);
    expect(clock.now()).toBeGreaterThan(Date.parse(grant.expiresAt));

    const answers = await burst(d.url, [{ hashPart: upload.hashPart }, { hashPart: randomHash() }]);
    expect(answers.map((a) => a.status)).toEqual([200, 404]);
    expect((await d.control('stats')).json).toMatchObject({ hits: 2, misses: 1, errors: [] });
    expect(d.logText()).toContain('cache token refreshed');
    expect(d.logText()).not.toContain(grant.token);
  });
});
