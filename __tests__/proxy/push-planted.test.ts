/**
 * Issue 19 finding 2, the push side: `acme/lib` (which `acme/app` reads, default policy) plants a
 * narinfo with its own NAR for one of `acme/app`'s store paths before `acme/app` ever pushes it.
 * The daemon's "already cached?" check must ask only the job's write slice, so it pushes the
 * genuine path, which then wins by precedence: a fresh store of `acme/app` gets the genuine bytes
 * (real server, real daemon, real Nix). Both ways the daemon asks: the batch route, and the HEAD
 * fallback against a server without it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { githubClaims } from '../support/oidc-issuer.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  type NarUpload,
  type TestServer,
} from '../support/server.js';
import { startTestDaemon } from './helpers.js';
import { startFront } from './stack.js';

const APP = { repository: 'acme/app', repository_id: '100001' };
const LIB = { repository: 'acme/lib', repository_id: '100002' };

let server: TestServer;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh path of acme/app, and acme/lib's own NAR planted under its name in acme/lib's slice. */
async function plantedAppPath(): Promise<NarUpload> {
  const [appPath, libPath] = await Promise.all(
    [1, 2].map(async () => (await nixBuild(randomChainExpr(1, 400)))[0] as string),
  );
  const genuine = await narUploadFor(appPath as string);
  const libNar = await narUploadFor(libPath as string);
  const planted = {
    ...libNar,
    hashPart: genuine.hashPart,
    storePath: genuine.storePath,
    narinfo: { ...libNar.narinfo, storePath: genuine.storePath, references: [] },
  };
  expect(await pushRaw(server.url, await server.ciToken(LIB), planted)).toEqual([201, 201]);
  return genuine;
}

async function narinfo(hashPart: string, token: string | null, query = ''): Promise<[number, string]> {
  const res = await fetch(`${server.url}/${hashPart}.narinfo${query}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return [res.status, await res.text()];
}

/** Pushes `path` as acme/app's job does (exchange, post-build report, then drain) through `via`. */
async function pushAsApp(path: string, via: string): Promise<Record<string, unknown>> {
  const exchange = await fetch(`${server.url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await server.issuer.sign(githubClaims(APP))}` },
  });
  const grant = (await exchange.json()) as {
    token: string;
    expires_at: string;
    read: string[];
    write: string;
  };
  expect(grant.write).toBe('acme/app');
  const d = await startTestDaemon({
    server: via,
    token: grant.token,
    tokenExpiresAt: grant.expires_at,
    read: grant.read,
    write: grant.write,
    push: { enabled: true, upstreamCaches: [] },
  });
  cleanups.push(() => d.close());
  expect(await d.control('built', { outPaths: [path] })).toMatchObject({ status: 202 });
  return (await d.control('drain', { deadlineSeconds: 60, paths: [path] })).json as unknown as Record<
    string,
    unknown
  >;
}

async function expectGenuineForApp(genuine: NarUpload): Promise<void> {
  const appToken = await server.ciToken(APP);
  const { store } = await substituteFresh(server, genuine.storePath, appToken);
  const installed = readFileSync(join(store, genuine.storePath, 'data'));
  expect(installed.equals(readFileSync(join(genuine.storePath, 'data')))).toBe(true);
  const [, text] = await narinfo(genuine.hashPart, appToken);
  expect(text).toContain(`NarHash: ${genuine.narinfo.narHash.toString()}`);
}

describe('pushing a path another readable slice planted first', () => {
  it("pushes the job's own copy (batch check), and acme/app's readers get the genuine bytes", async () => {
    const genuine = await plantedAppPath();
    // Before the push, acme/app's union answers with the planted narinfo: that is the hole.
    const [status, text] = await narinfo(genuine.hashPart, await server.ciToken(APP));
    expect(status).toBe(200);
    expect(text).not.toContain(`NarHash: ${genuine.narinfo.narHash.toString()}`);

    const front = await startFront(server.url);
    cleanups.push(front.close);
    const stats = await pushAsApp(genuine.storePath, front.url);
    expect(stats).toMatchObject({ failed: [], pushed: { paths: 1 }, skipped: { alreadyCached: 0 } });
    const batches = front.posted.filter((p) => p.url === '/_api/v1/narinfos');
    expect(batches.map((b) => (JSON.parse(b.body) as { scope?: string }).scope)).toEqual(['write']);
    await expectGenuineForApp(genuine);
  });

  it('pushes it through the HEAD fallback too, against a server without the batch route', async () => {
    const genuine = await plantedAppPath();
    const front = await startFront(server.url, {
      failures: 1000,
      status: 404,
      failWhen: (method, url) => method === 'POST' && url === '/_api/v1/narinfos',
    });
    cleanups.push(front.close);
    const stats = await pushAsApp(genuine.storePath, front.url);
    expect(stats).toMatchObject({ failed: [], pushed: { paths: 1 }, skipped: { alreadyCached: 0 } });
    expect(front.requests).toContain(`HEAD /${genuine.hashPart}.narinfo?scope=write`);
    await expectGenuineForApp(genuine);
  });
});

describe('the write scope of narinfo lookups', () => {
  let genuine: NarUpload;
  beforeAll(async () => {
    genuine = await plantedAppPath();
  });

  it('answers from the write slice only; without it, from the union', async () => {
    const [app, lib] = [await server.ciToken(APP), await server.ciToken(LIB)];
    expect((await narinfo(genuine.hashPart, app, '?scope=write'))[0]).toBe(404);
    expect((await narinfo(genuine.hashPart, app, '?scope=union'))[0]).toBe(200);
    expect((await narinfo(genuine.hashPart, app))[0]).toBe(200);
    expect((await narinfo(genuine.hashPart, lib, '?scope=write'))[0]).toBe(200);
    const batch = await fetch(`${server.url}/_api/v1/narinfos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${app}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hashParts: [genuine.hashPart], scope: 'write' }),
    });
    expect(await batch.json()).toEqual({ narinfos: {} });
  });

  it('refuses the write scope without a write slice, and unknown scopes, with 400 naming the problem', async () => {
    const reader = await server.readToken(['acme/*']);
    const [readOnly, readOnlyText] = await narinfo(genuine.hashPart, reader, '?scope=write');
    expect(readOnly).toBe(400);
    expect(readOnlyText).toContain('this cache token grants no write slice');
    const [anonymous, anonymousText] = await narinfo(genuine.hashPart, null, '?scope=write');
    expect(anonymous).toBe(400);
    expect(anonymousText).toContain('the request has no cache token');
    const [unknown, unknownText] = await narinfo(genuine.hashPart, reader, '?scope=all');
    expect(unknown).toBe(400);
    expect(unknownText).toContain('query parameter scope "all" is not one of "union", "write"');
    const batch = await fetch(`${server.url}/_api/v1/narinfos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hashParts: [genuine.hashPart], scope: 'write' }),
    });
    expect(batch.status).toBe(400);
    expect(await batch.text()).toContain('lookup scope "write" asks the token\'s write slice');
  });
});
