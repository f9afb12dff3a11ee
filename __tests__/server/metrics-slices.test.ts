/**
 * `GET /metrics` names slices (`sluice_slice_bytes{slice}`), and slice names are repositories'
 * and pull requests'. Like narinfos, a slice's series are shown only to a request that may read
 * the slice: anonymous scrapes see public slices only, a token the slices it reads.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { addTinyPaths } from '../support/nix.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function sliceSeries(token?: string): Promise<string[]> {
  const headers = token ? { authorization: `Bearer ${token}` } : undefined;
  const res = await fetch(`${server.url}/metrics`, { headers });
  expect([res.status, res.headers.get('cache-control')]).toEqual([200, 'private, no-store']);
  const text = await res.text();
  return [...text.matchAll(/^sluice_slice_bytes\{slice="([^"]*)"\}/gm)].map((m) => m[1] as string).sort();
}

describe('per-slice metrics', () => {
  it('are shown only for slices the request may read', async () => {
    const paths = await addTinyPaths(2, 'metrics-slices');
    const secret = await server.ciToken({ repository: 'other/secret-project' });
    const app = await server.ciToken({ repository: 'acme/app' });
    expect(await pushRaw(server.url, secret, await narUploadFor(paths[0] as string))).toEqual([201, 201]);
    expect(await pushRaw(server.url, app, await narUploadFor(paths[1] as string))).toEqual([201, 201]);
    await server.collectGarbage();

    // The operator's view: a read token for every slice.
    expect(await sliceSeries(await server.readToken(['*']))).toEqual(['acme/app', 'other/secret-project']);
    // Nobody else learns that other/secret-project exists: not anonymous callers, not acme's jobs.
    expect(await sliceSeries()).toEqual([]);
    expect(await sliceSeries(app)).toEqual(['acme/app']);
    expect(await sliceSeries(secret)).toEqual(['other/secret-project']);
    // The rest of the text is there for everyone.
    const anonymous = await (await fetch(`${server.url}/metrics`)).text();
    expect(anonymous).toMatch(/^sluice_gc_runs_total\{result="done"\} 1$/m);
    expect(anonymous).toMatch(/^# TYPE sluice_slice_bytes gauge$/m);
  });
});
