/**
 * The recent narinfos on the real server and the real daemon: Nix's hits on the paths the job's
 * slices used last are answered from memory (real Nix substitutes through them), and the reads are
 * reported to the server so retention sees them; a path of a slice the job may not read is never
 * among them; a path pushed after they were fetched is still found; after the trust window every
 * hit asks the server again.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { RECENT_DEFAULTS } from '../../src/proxy/pull/recent-narinfos.js';
import { ManualClock } from '../support/clock.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, substituteFresh, type NarUpload } from '../support/server.js';
import { startTestDaemon, type TestDaemon } from './helpers.js';
import { askedHashParts, startFront, startStack, type Stack } from './stack.js';

const OTHER_OWNER = { repository: 'other/thing', repository_id: '3001', repository_owner_id: '7001' };

let stack: Stack;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fresh(): Promise<NarUpload> {
  const [path] = await nixBuild(randomChainExpr(1, 200));
  return narUploadFor(path!);
}

/** A daemon in front of `front`, once its recent narinfos are fetched. */
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
  for (let i = 0; i < 200; i++) {
    const set = (await d.control('stats')).json.lookupSet;
    if (set?.state !== 'loading' && set?.recent?.state !== 'loading') return d;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the recent narinfos did not load');
}

async function get(url: string, hashPart: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}/${hashPart}.narinfo`);
  return { status: response.status, text: await response.text() };
}

/** The hash parts the daemon asked the server for (Nix's lookups and the reported reads). */
const batched = askedHashParts;

async function recentStats(d: TestDaemon) {
  return (await d.control('stats')).json.lookupSet!.recent!;
}

describe('the recent narinfos in the daemon', () => {
  it('answer hits from memory, real Nix substitutes through them, and the reads reach the server', async () => {
    const app = await stack.server.ciToken();
    const mine = await fresh();
    const theirs = await fresh();
    expect(await pushRaw(stack.server.url, app, mine)).toEqual([201, 201]);
    expect(await pushRaw(stack.server.url, await stack.server.ciToken(OTHER_OWNER), theirs)).toEqual([
      201, 201,
    ]);
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const clock = new ManualClock().freeze();
    const d = await daemonFor(front.url, clock);

    const served = await fetch(`${stack.server.url}/${mine.hashPart}.narinfo`, {
      headers: { authorization: `Bearer ${app}` },
    });
    const { closure } = await substituteFresh(
      { url: d.url, publicKey: stack.server.publicKey },
      mine.storePath,
    );
    expect(closure).toEqual([mine.storePath]);
    expect(await get(d.url, mine.hashPart)).toEqual({ status: 200, text: await served.text() });
    // Answered without a lookup of the server.
    expect(batched(front)).not.toContain(mine.hashPart);
    expect(await recentStats(d)).toMatchObject({ state: 'loaded', reported: 0 });
    expect((await recentStats(d)).served).toBeGreaterThanOrEqual(2);

    // Another repository's path is not among them (nor in the set): 404, not served from memory.
    const servedBefore = (await recentStats(d)).served;
    expect((await get(d.url, theirs.hashPart)).status).toBe(404);
    expect((await recentStats(d)).served).toBe(servedBefore);

    // The reads go to the server as one batch lookup (which records them) once the period is over.
    clock.advance(RECENT_DEFAULTS.reportEveryMs);
    for (let i = 0; i < 200 && (await recentStats(d)).reported === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(batched(front).filter((hashPart) => hashPart === mine.hashPart)).toEqual([mine.hashPart]);
    expect(await recentStats(d)).toMatchObject({ reported: 1, dropped: 0 });
  });

  it('find a path pushed after them, and ask the server again after the trust window', async () => {
    const app = await stack.server.ciToken();
    const before = await fresh();
    expect(await pushRaw(stack.server.url, app, before)).toEqual([201, 201]);
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const clock = new ManualClock().freeze();
    const d = await daemonFor(front.url, clock);

    const later = await fresh();
    expect(await pushRaw(stack.server.url, app, later)).toEqual([201, 201]);
    // Not among the recent narinfos: the narinfo set's delta and a batch lookup find it.
    clock.advance(1_001);
    expect((await get(d.url, later.hashPart)).status).toBe(200);
    expect(batched(front)).toContain(later.hashPart);

    expect((await get(d.url, before.hashPart)).status).toBe(200);
    expect(batched(front)).not.toContain(before.hashPart);
    clock.advance(RECENT_DEFAULTS.trustMs);
    expect((await get(d.url, before.hashPart)).status).toBe(200);
    // Past the window, asked of the server (besides the reported read).
    const asked = batched(front).filter((hashPart) => hashPart === before.hashPart);
    expect(asked.length).toBeGreaterThanOrEqual(1);
    expect(await recentStats(d)).toMatchObject({ served: 1, held: 0 });
  });
});
