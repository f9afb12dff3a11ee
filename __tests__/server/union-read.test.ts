/**
 * Issue 19 finding 2: a slice a reader can read must not override the reader's own slice. With the
 * default policy `acme/app` reads `acme/*`; `acme/lib` uploads a narinfo (with its own NAR) for one
 * of `acme/app`'s store paths, then `acme/app` pushes the genuine one. A fresh store of `acme/app`
 * must substitute the genuine content (real Nix), the conflict must be reported, and the other
 * readers get the narinfo of the slice their grants list first, never the oldest.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  type NarUpload,
  type TestServer,
} from '../support/server.js';

const APP = { repository: 'acme/app', repository_id: '100001' };
const LIB = { repository: 'acme/lib', repository_id: '100002' };

let server: TestServer;
let genuine: NarUpload;
let planted: NarUpload;

async function narHashServed(token: string): Promise<string> {
  const res = await fetch(`${server.url}/${genuine.hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return /^NarHash: (\S+)$/m.exec(await res.text())?.[1] as string;
}

beforeAll(async () => {
  server = await startTestServer();
  const [appPath, libPath] = await Promise.all(
    [1, 2].map(async () => (await nixBuild(randomChainExpr(1, 400)))[0] as string),
  );
  genuine = await narUploadFor(appPath as string);
  const libNar = await narUploadFor(libPath as string);
  // acme/lib's own NAR, described as acme/app's store path: internally consistent, so accepted.
  planted = {
    ...libNar,
    hashPart: genuine.hashPart,
    storePath: genuine.storePath,
    narinfo: { ...libNar.narinfo, storePath: genuine.storePath, references: [] },
  };
  expect(await pushRaw(server.url, await server.ciToken(LIB), planted)).toEqual([201, 201]);
  expect(await pushRaw(server.url, await server.ciToken(APP), genuine)).toEqual([201, 201]);
});
afterAll(async () => {
  await server?.close();
});

describe('reading the union of slices', () => {
  it("serves the reader's own slice first: a fresh store of acme/app installs the genuine content", async () => {
    const { store } = await substituteFresh(server, genuine.storePath, await server.ciToken(APP));
    const installed = readFileSync(join(store, genuine.storePath, 'data'));
    expect(installed.equals(readFileSync(join(genuine.storePath, 'data')))).toBe(true);
    expect(await narHashServed(await server.ciToken(APP))).toBe(genuine.narinfo.narHash.toString());
  });

  it('answers the batch route by the same precedence', async () => {
    const res = await fetch(`${server.url}/_api/v1/narinfos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await server.ciToken(APP)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hashParts: [genuine.hashPart] }),
    });
    const { narinfos } = (await res.json()) as { narinfos: Record<string, string> };
    expect(narinfos[genuine.hashPart]).toContain(`NarHash: ${genuine.narinfo.narHash.toString()}`);
  });

  it("other readers get the slice their grants list first, acme/lib's own reads its own", async () => {
    const [app, lib] = [genuine.narinfo.narHash.toString(), planted.narinfo.narHash.toString()];
    expect(await narHashServed(await server.ciToken(LIB))).toBe(lib);
    expect(await narHashServed(await server.readToken(['acme/lib', 'acme/app']))).toBe(lib);
    expect(await narHashServed(await server.readToken(['acme/app', 'acme/lib']))).toBe(app);
    // One pattern trusts its slices alike: the slice name decides, the same answer every time.
    expect(await narHashServed(await server.readToken(['acme/*']))).toBe(app);
  });

  it('reports the conflict: a metric per lookup, a warning naming the slices', async () => {
    await narHashServed(await server.ciToken(APP));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/^sluice_narinfo_conflicts_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    const warnings = server.logs
      .map(
        (line) =>
          JSON.parse(line) as { level: number; storePath?: string; served?: string; conflicting?: string[] },
      )
      .filter((entry) => entry.level === 40 && entry.storePath === genuine.storePath);
    expect(warnings).toContainEqual(
      expect.objectContaining({ served: 'acme/app', conflicting: ['acme/lib'] }),
    );
  });
});
