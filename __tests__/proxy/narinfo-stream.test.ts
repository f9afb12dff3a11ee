/**
 * The daemon's lookups over the narinfo stream, on the real server: Nix's lookups that memory does
 * not answer go as lines of one request, with the answers the batch route gives; behind something
 * that holds request bodies back until they end (a buffering reverse proxy), the daemon gives up
 * on streams after the first answer's deadline and asks the batch route, and the answers are the same.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { NARINFO_BATCH_PATH, NARINFO_STREAM_PATH } from '../../src/contracts/narinfo-batch.js';
import { NARINFO_STREAM_DEFAULTS } from '../../src/proxy/upstream/narinfo-stream.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, type NarUpload } from '../support/server.js';
import { startTestDaemon, type TestDaemon } from './helpers.js';
import { askedHashParts, startFront, startStack, type Stack } from './stack.js';

let stack: Stack;
let uploads: NarUpload[];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  stack = await startStack();
  const token = await stack.server.ciToken();
  uploads = await Promise.all(
    [1, 2, 3].map(async () => narUploadFor((await nixBuild(randomChainExpr(1, 200)))[0] as string)),
  );
  for (const upload of uploads) expect(await pushRaw(stack.server.url, token, upload)).toEqual([201, 201]);
});
afterAll(async () => {
  await stack.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function daemonFor(server: string): Promise<TestDaemon> {
  const grant = await stack.cacheToken();
  const d = await startTestDaemon({ server, token: grant.token, tokenExpiresAt: grant.expiresAt });
  cleanups.push(() => d.close());
  return d;
}

/** Each path's status and body through the daemon, asked all at once. */
async function lookUp(d: TestDaemon, hashParts: string[]): Promise<{ status: number; text: string }[]> {
  return Promise.all(
    hashParts.map(async (hashPart) => {
      const response = await fetch(`${d.url}/${hashPart}.narinfo`);
      return { status: response.status, text: await response.text() };
    }),
  );
}

async function served(hashPart: string): Promise<string> {
  const response = await fetch(`${stack.server.url}/${hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${await stack.server.ciToken()}` },
  });
  return response.text();
}

describe('lookups over the narinfo stream', () => {
  it('go as lines of one request and answer what the batch route answers', async () => {
    // Without the narinfo set and the recent narinfos: every lookup is asked of the server.
    const front = await startFront(stack.server.url, {
      refuseSet: true,
      refuseRecent: true,
    });
    cleanups.push(front.close);
    const d = await daemonFor(front.url);
    const hashParts = uploads.map((upload) => upload.hashPart);
    const answers = await lookUp(d, [...hashParts, '0'.repeat(32)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 404]);
    for (const [i, hashPart] of hashParts.entries()) expect(answers[i]!.text).toBe(await served(hashPart));
    expect(front.requests.filter((r) => r === `POST ${NARINFO_STREAM_PATH}`)).toHaveLength(1);
    expect(front.requests.filter((r) => r === `POST ${NARINFO_BATCH_PATH}`)).toEqual([]);
    expect(new Set(askedHashParts(front))).toEqual(new Set([...hashParts, '0'.repeat(32)]));
    expect((await d.control('stats')).json.lookupSet?.streamed).toBeGreaterThan(0);
  });

  it('are given up behind a proxy that holds request bodies back: the batch route answers', async () => {
    const front = await startFront(stack.server.url, {
      refuseSet: true,
      refuseRecent: true,
      holdStreamBodies: true,
    });
    cleanups.push(front.close);
    const d = await daemonFor(front.url);
    const started = Date.now();
    const first = await lookUp(d, [uploads[0]!.hashPart]);
    expect(first.map((a) => a.status)).toEqual([200]);
    expect(first[0]!.text).toBe(await served(uploads[0]!.hashPart));
    // It waited for the stream's first answer, then asked the batch route.
    expect(Date.now() - started).toBeGreaterThanOrEqual(NARINFO_STREAM_DEFAULTS.firstAnswerMs - 100);
    const later = await lookUp(d, [uploads[1]!.hashPart, uploads[2]!.hashPart]);
    expect(later.map((a) => a.status)).toEqual([200, 200]);
    // One stream tried, never again; every batch went to the batch route.
    expect(front.requests.filter((r) => r === `POST ${NARINFO_STREAM_PATH}`)).toHaveLength(1);
    expect(front.requests.filter((r) => r === `POST ${NARINFO_BATCH_PATH}`).length).toBeGreaterThanOrEqual(2);
    expect((await d.control('stats')).json.lookupSet?.streamed).toBe(0);
    expect(d.logText()).toMatch(/no answer on the narinfo stream/);
  });
});
