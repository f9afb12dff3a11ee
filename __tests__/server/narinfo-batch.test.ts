/**
 * `POST /_api/v1/narinfos`: many lookups in one request, with exactly the access rules of
 * `GET /<hash>.narinfo` (the union of readable slices, public slices without a token), the same
 * signed text, the same metrics; bad requests get errors naming the problem.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { NARINFO_BATCH_LIMIT } from '../../src/contracts/narinfo-batch.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, rawRequest, startTestServer, type TestServer } from '../support/server.js';

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
const ABSENT = '0'.repeat(32);

let server: TestServer;
let appToken: string;
let hash: { app: string; other: string; oss: string };

async function batch(
  body: unknown,
  token: string | null = appToken,
  target = server,
): Promise<{ status: number; text: string; json: { narinfos: Record<string, string> } | undefined }> {
  const response = await fetch(`${target.url}/_api/v1/narinfos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text) as { narinfos: Record<string, string> };
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

async function lookupCounts(): Promise<{ hit: number; miss: number }> {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const count = (result: string) =>
    Number(
      new RegExp(`^sluice_narinfo_lookups_total\\{result="${result}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0,
    );
  return { hit: count('hit'), miss: count('miss') };
}

beforeAll(async () => {
  server = await startTestServer({ yaml: YAML });
  appToken = await server.ciToken(APP);
  const [app, other, oss] = await Promise.all(
    [1, 2, 3].map(async () => narUploadFor((await nixBuild(randomChainExpr(1, 300)))[0] as string)),
  );
  expect(await pushRaw(server.url, appToken, app!)).toEqual([201, 201]);
  expect(await pushRaw(server.url, await server.ciToken(OTHER), other!)).toEqual([201, 201]);
  expect(await pushRaw(server.url, await server.ciToken(OSS), oss!)).toEqual([201, 201]);
  hash = { app: app!.hashPart, other: other!.hashPart, oss: oss!.hashPart };
});
afterAll(async () => {
  await server.close();
});

describe('batch narinfo lookups', () => {
  it('answers the readable hits with the signed text a GET gives, nothing for misses, and counts each', async () => {
    const before = await lookupCounts();
    const { status, json } = await batch({
      hashParts: [hash.app, hash.other, hash.oss, ABSENT, hash.app],
    });
    expect(status).toBe(200);
    // Another owner's slice stays unreadable through the batch route; public slices are readable.
    expect(Object.keys(json!.narinfos).sort()).toEqual([hash.app, hash.oss].sort());
    const single = await fetch(`${server.url}/${hash.app}.narinfo`, {
      headers: { authorization: `Bearer ${appToken}` },
    });
    expect(json!.narinfos[hash.app]).toBe(await single.text());
    expect(json!.narinfos[hash.app]).toMatch(/^Sig: /m);
    // The repeated hash part counts once; the single GET above counted one hit more.
    expect(await lookupCounts()).toEqual({ hit: before.hit + 3, miss: before.miss + 2 });
  });

  it('reads public slices only without a token, and refuses a bad token', async () => {
    const anonymous = await batch({ hashParts: [hash.app, hash.oss] }, null);
    expect(anonymous.status).toBe(200);
    expect(Object.keys(anonymous.json!.narinfos)).toEqual([hash.oss]);

    const forged = await batch({ hashParts: [hash.app] }, `${appToken.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    expect(forged.text).toMatch(/cache token: bad signature/);
  });

  it('asks for a token when no slice is public', async () => {
    const closed = await startTestServer();
    try {
      const response = await batch({ hashParts: [ABSENT] }, null, closed);
      expect(response.status).toBe(401);
      expect(response.text).toMatch(/need a cache token: no slice is public/);
      expect((await batch({ hashParts: [ABSENT] }, await closed.ciToken(), closed)).json).toEqual({
        narinfos: {},
      });
    } finally {
      await closed.close();
    }
  });

  it('names the bad hash part, refuses too many, bad JSON and other methods', async () => {
    const bad = await batch({ hashParts: [hash.app, 'e'.repeat(32)] });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/hashParts\[1\] "e{32}" is not a 32-character nix32 store path hash/);
    const notString = await batch({ hashParts: [42] });
    expect(notString.text).toMatch(/hashParts\[0\] 42 is not/);

    const tooMany = await batch({ hashParts: Array.from({ length: NARINFO_BATCH_LIMIT + 1 }, () => ABSENT) });
    expect(tooMany.status).toBe(413);
    expect(tooMany.text).toMatch(
      `${NARINFO_BATCH_LIMIT + 1} hash parts in one request; at most ${NARINFO_BATCH_LIMIT}`,
    );

    const notJson = await batch('hashParts=abc');
    expect(notJson.status).toBe(400);
    expect(notJson.text).toMatch(/request body is not JSON/);
    const wrongShape = await batch({ hashes: [hash.app] });
    expect(wrongShape.status).toBe(400);
    expect(wrongShape.text).toMatch(/must be \{"hashParts"/);

    const huge = await rawRequest(server.url, 'POST', '/_api/v1/narinfos', {
      headers: { authorization: `Bearer ${appToken}`, 'content-length': String(1 << 20) },
    });
    expect(huge.status).toBe(413);
    expect(huge.text).toMatch(/narinfo lookup request of 1048576 bytes is larger than the limit/);

    const get = await fetch(`${server.url}/_api/v1/narinfos`, {
      headers: { authorization: `Bearer ${appToken}` },
    });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.text()).toMatch(/GET is not allowed on \/_api\/v1\/narinfos/);
  });
});
