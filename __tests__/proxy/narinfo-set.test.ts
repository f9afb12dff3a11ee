/**
 * The narinfo set on the real server and the real daemon: it holds the readable slices' paths and
 * never another's; a path pushed after it was made is still found (by real Nix) once the freshness
 * bound has passed, and the job's own push at once; a false positive goes to the server and answers
 * 404; a path of an unreadable slice is never answered, by the set or by the narinfos fetched ahead.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import {
  decodeNarInfoSet,
  encodeNarInfoSet,
  hasPrefix,
  hashPrefix,
  NARINFO_SET_PATH,
  sortedUnique,
} from '../../src/contracts/narinfo-set.js';
import { ManualClock } from '../support/clock.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, substituteFresh, type NarUpload } from '../support/server.js';
import { startTestDaemon, type TestDaemon } from './helpers.js';
import { askedHashParts, startFront, startStack, type Stack } from './stack.js';

const OTHER_OWNER = { repository: 'other/thing', repository_id: '3001', repository_owner_id: '7001' };
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
const FRESHNESS_MS = 1_000;

let stack: Stack;
const cleanups: (() => Promise<void>)[] = [];

const randomNix32 = (length: number) =>
  Array.from({ length }, () => NIX32[Math.floor(Math.random() * 32)]).join('');

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The uploads of a fresh chain's paths, the leaf first (path i refers to path i-1). */
async function chain(count: number): Promise<NarUpload[]> {
  const [top] = await nixBuild(randomChainExpr(count, 200));
  const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
  const uploads = await Promise.all(closure.map(narUploadFor));
  const ordered = uploads.filter((upload) => upload.narinfo.references.length === 0);
  while (ordered.length < uploads.length) {
    const last = ordered[ordered.length - 1]!.storePath.slice('/nix/store/'.length);
    ordered.push(uploads.find((upload) => upload.narinfo.references.includes(last))!);
  }
  return ordered;
}

async function daemonFor(server: string, clock: ManualClock): Promise<TestDaemon> {
  const grant = await stack.cacheToken();
  const d = await startTestDaemon(
    {
      server,
      token: grant.token,
      tokenExpiresAt: grant.expiresAt,
      push: { enabled: true, upstreamCaches: [] },
    },
    undefined,
    clock,
  );
  cleanups.push(() => d.close());
  return d;
}

/** Waits (polling, briefly) until the daemon's first fetch of the set ended; returns its state. */
async function setState(d: TestDaemon): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const state = (await d.control('stats')).json.lookupSet?.state;
    if (state !== 'loading') return String(state);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the narinfo set did not load');
}

async function status(url: string, hashPart: string): Promise<number> {
  const response = await fetch(`${url}/${hashPart}.narinfo`);
  await response.arrayBuffer();
  return response.status;
}

/** Hash parts the daemon asked the server for in batch lookups. */
const batched = askedHashParts;

describe('the narinfo set format', () => {
  it('round-trips sorted prefixes, orders them as the hash parts sort, and refuses damaged bodies', () => {
    const parts = Array.from({ length: 2000 }, () => randomNix32(32)).sort();
    const prefixes = parts.map((part) => hashPrefix(part));
    // nix32's alphabet is in ASCII order: sorted hash parts have non-decreasing prefixes.
    expect(prefixes).toEqual([...prefixes].sort((a, b) => a - b));
    expect(hashPrefix('0'.repeat(32))).toBe(0);
    expect(hashPrefix('z'.repeat(32))).toBe(0xffffffff);
    expect(hashPrefix('0000001' + 'z'.repeat(25))).toBe(0);
    expect(hashPrefix('0000008' + '0'.repeat(25))).toBe(1);
    const set = {
      cursor: '42',
      full: true,
      prefixes: sortedUnique(Uint32Array.from([...prefixes, 0, 0xffffffff])),
    };
    const body = encodeNarInfoSet(set);
    expect(body.length).toBeLessThan(set.prefixes.length * 4 + 100);
    const decoded = decodeNarInfoSet(body);
    expect({ ...decoded, prefixes: [...decoded.prefixes] }).toEqual({ ...set, prefixes: [...set.prefixes] });
    for (const part of parts) expect(hasPrefix(decoded.prefixes, hashPrefix(part))).toBe(true);
    expect(() => decodeNarInfoSet(body.subarray(0, body.length - 1))).toThrow(
      /ends after \d+ of \d+ prefixes/,
    );
    expect(() => decodeNarInfoSet(Buffer.concat([body, Buffer.from([1])]))).toThrow(/bytes after its last/);
    expect(() => decodeNarInfoSet(Buffer.from('{"format":"other"}\n'))).toThrow(/unknown narinfo set format/);
    const repeated = Buffer.from(
      '{"format":"sluice-narinfo-set-1","cursor":"1","count":2,"full":true}\n\u0005\u0000',
    );
    expect(() => decodeNarInfoSet(repeated)).toThrow(/not strictly increasing/);
  });
});

describe('the narinfo set route', () => {
  it("holds the readable slices' paths, never another's, and deltas from a cursor", async () => {
    const [mine, theirs, later, theirsLater] = await Promise.all([1, 2, 3, 4].map(() => chain(1)));
    const app = await stack.server.ciToken();
    const other = await stack.server.ciToken(OTHER_OWNER);
    expect(await pushRaw(stack.server.url, app, mine![0]!)).toEqual([201, 201]);
    expect(await pushRaw(stack.server.url, other, theirs![0]!)).toEqual([201, 201]);
    const fetchSet = async (query = '') => {
      const response = await fetch(`${stack.server.url}${NARINFO_SET_PATH}${query}`, {
        headers: { authorization: `Bearer ${app}` },
      });
      expect([response.status, response.headers.get('content-type')]).toEqual([
        200,
        'application/vnd.sluice.narinfo-set',
      ]);
      return decodeNarInfoSet(Buffer.from(await response.arrayBuffer()));
    };
    const holds = (set: { prefixes: Uint32Array }, upload: NarUpload) =>
      hasPrefix(set.prefixes, hashPrefix(upload.hashPart));

    const full = await fetchSet();
    expect(full.full).toBe(true);
    expect([holds(full, mine![0]!), holds(full, theirs![0]!)]).toEqual([true, false]);

    expect(await pushRaw(stack.server.url, app, later![0]!)).toEqual([201, 201]);
    expect(await pushRaw(stack.server.url, other, theirsLater![0]!)).toEqual([201, 201]);
    const delta = await fetchSet(`?since=${full.cursor}`);
    expect(delta.full).toBe(false);
    expect([holds(delta, later![0]!), holds(delta, theirsLater![0]!), holds(delta, mine![0]!)]).toEqual([
      true,
      false,
      false,
    ]);
    const again = await fetchSet();
    expect([holds(again, later![0]!), holds(again, theirsLater![0]!)]).toEqual([true, false]);

    const anonymous = await fetch(`${stack.server.url}${NARINFO_SET_PATH}`);
    expect([anonymous.status, await anonymous.text()]).toEqual([
      401,
      expect.stringMatching(/the narinfo set needs a cache token/),
    ]);
    const bad = await fetch(`${stack.server.url}${NARINFO_SET_PATH}?since=x1`, {
      headers: { authorization: `Bearer ${app}` },
    });
    expect([bad.status, await bad.text()]).toEqual([
      400,
      expect.stringMatching(/query parameter since "x1" is not a cursor/),
    ]);
  });
});

describe('lookups answered from the narinfo set', () => {
  it('finds a path pushed after the set was made once the bound passed, and its own push at once', async () => {
    const clock = new ManualClock().freeze();
    const d = await daemonFor(stack.server.url, clock);
    expect(await setState(d)).toBe('loaded');
    // Another job pushes after this job's set was made.
    const [pushedLater] = await chain(1);
    expect(await pushRaw(stack.server.url, await stack.server.ciToken(), pushedLater!)).toEqual([201, 201]);
    // Within the bound the set may still say "absent" (the clock stands still: it does).
    expect(await status(d.url, pushedLater!.hashPart)).toBe(404);
    clock.advance(FRESHNESS_MS + 1);
    // Past it, Nix finds it: the daemon fetched a delta before answering.
    const { closure } = await substituteFresh(
      { url: d.url, publicKey: stack.server.publicKey },
      pushedLater!.storePath,
    );
    expect(closure).toEqual([pushedLater!.storePath]);

    // The job's own push is found at once, without waiting for the server's delta.
    const [own] = await nixBuild(randomChainExpr(1, 100));
    const drained = (await d.control('drain', { deadlineSeconds: 60, paths: [own!] })).json;
    expect(drained.pushed.paths).toBe(1);
    expect(await status(d.url, own!.slice(11, 43))).toBe(200);
    const stats = (await d.control('stats')).json;
    expect(stats.lookupSet).toMatchObject({ state: 'loaded', deltas: 1, absent: 1 });
  });

  it('sends a false positive to the server, which answers 404; a plain miss never leaves the daemon', async () => {
    const [known] = await chain(1);
    expect(await pushRaw(stack.server.url, await stack.server.ciToken(), known!)).toEqual([201, 201]);
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const d = await daemonFor(front.url, new ManualClock().freeze());
    expect(await setState(d)).toBe('loaded');
    // The same first 7 characters: the same 32-bit prefix, another path.
    const falsePositive = known!.hashPart.slice(0, 7) + randomNix32(25);
    const miss = randomNix32(32);
    expect(await status(d.url, falsePositive)).toBe(404);
    expect(await status(d.url, miss)).toBe(404);
    expect(batched(front)).toEqual([falsePositive]);
    expect(await status(d.url, known!.hashPart)).toBe(200);
  });

  it('fetches the narinfos of a hit’s references ahead, and hands each over once', async () => {
    const uploads = await chain(3);
    const app = await stack.server.ciToken();
    for (const upload of uploads) expect(await pushRaw(stack.server.url, app, upload)).toEqual([201, 201]);
    const [leaf, middle, top] = uploads;
    const front = await startFront(stack.server.url, { refuseRecent: true });
    cleanups.push(front.close);
    const d = await daemonFor(front.url, new ManualClock().freeze());
    expect(await setState(d)).toBe('loaded');
    expect(await status(d.url, top!.hashPart)).toBe(200);
    // Asked of the server before Nix asks for it.
    for (let i = 0; i < 100 && !batched(front).includes(middle!.hashPart); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(batched(front)).toEqual([top!.hashPart, middle!.hashPart]);
    expect(await status(d.url, middle!.hashPart)).toBe(200);
    expect(await status(d.url, leaf!.hashPart)).toBe(200);
    // The middle one's answer was used: only the leaf (prefetched when the middle was served) is new.
    expect(batched(front).sort()).toEqual([top!.hashPart, middle!.hashPart, leaf!.hashPart].sort());
    const stats = (await d.control('stats')).json.lookupSet;
    expect(stats).toMatchObject({ prefetched: 2, prefetchServed: 2 });
  });

  it.each([
    ['with the set', false],
    ['without the set (a server without the route: everything is asked ahead)', true],
  ])('never answers a path only an unreadable slice holds, %s', async (_name, refuseSet) => {
    // The top is in the job's slice; its reference only in another owner's.
    const [leaf, top] = await chain(2);
    expect(await pushRaw(stack.server.url, await stack.server.ciToken(OTHER_OWNER), leaf!)).toEqual([
      201, 201,
    ]);
    expect(await pushRaw(stack.server.url, await stack.server.ciToken(), top!)).toEqual([201, 201]);
    const front = await startFront(stack.server.url, {
      failures: refuseSet ? 1000 : 0,
      status: 404,
      failWhen: (method, url) => method === 'GET' && url === NARINFO_SET_PATH,
    });
    cleanups.push(front.close);
    const d = await daemonFor(front.url, new ManualClock().freeze());
    expect(await setState(d)).toBe(refuseSet ? 'unsupported' : 'loaded');
    expect(await status(d.url, top!.hashPart)).toBe(200);
    expect(await status(d.url, leaf!.hashPart)).toBe(404);
    expect(await status(d.url, leaf!.hashPart)).toBe(404);
    // With the set the leaf is not even asked; without it, asked ahead, and the server said no.
    expect(batched(front).filter((h) => h === leaf!.hashPart)).toHaveLength(refuseSet ? 1 : 0);
    expect((await d.control('stats')).json.lookupSet).toMatchObject({ prefetched: refuseSet ? 1 : 0 });
  });
});
