/**
 * Slices hold: a repository's token reads only what its policy grants (even knowing a NAR's hash),
 * org-wide readers see everything of the org, pull requests cannot write, public slices need no
 * token, and a slice stays with the repository (id) that first wrote it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { serializeNarInfo } from '../../src/nix/narinfo.js';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  writeNetrc,
  type NarUpload,
  type TestServer,
} from '../support/server.js';

const YAML = `
slices:
  - name: "\${repository}"
    read: [ {} ]
    write:
      - { event_name: push }
  - name: "acme/*"
    read:
      - { repository: acme/ops }
  - name: acme/releases
    write:
      - { repository: "acme/*", event_name: release }
  - name: oss/tool
    public: true
    write:
      - { repository: oss/tool, event_name: push }
`;

const A = { repository: 'acme/app', repository_id: '1001' };
const B = { repository: 'acme/lib', repository_id: '1002' };
const OPS = { repository: 'acme/ops', repository_id: '1003' };
const OSS = { repository: 'oss/tool', repository_id: '2001', repository_owner_id: '6001' };

let server: TestServer;
let pathA: NarUpload;
let pathB: NarUpload;
let pathOss: NarUpload;

async function nixCopy(token: string, path: string): Promise<void> {
  const machine = makeNixMachine();
  await nix(
    'nix',
    ['copy', '--option', 'netrc-file', writeNetrc(machine.dir, token), '--to', server.url, path],
    {
      machine,
    },
  );
}

async function get(path: string, token: string | null, method = 'GET'): Promise<number> {
  const res = await fetch(`${server.url}/${path}`, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  server = await startTestServer({ yaml: YAML });
  const [a, b, oss] = await Promise.all(
    [1, 2, 3].map(async () => (await nixBuild(randomChainExpr(1, 500)))[0] as string),
  );
  // Pushed with real Nix (xz, as nix copy does by default) for A; raw uploads (no compression) for the others.
  await nixCopy(await server.ciToken(A), a as string);
  pathA = await narUploadFor(a as string);
  pathB = await narUploadFor(b as string);
  pathOss = await narUploadFor(oss as string);
  expect(await pushRaw(server.url, await server.ciToken(B), pathB)).toEqual([201, 201]);
  expect(await pushRaw(server.url, await server.ciToken(OSS), pathOss)).toEqual([201, 201]);
});
afterAll(async () => {
  await server?.close();
});

async function putNar(token: string, upload: NarUpload): Promise<Response> {
  return fetch(`${server.url}/${upload.narUrl}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
    body: new Uint8Array(upload.nar),
  });
}

async function narUrlServed(hashPart: string, token: string): Promise<string> {
  const res = await fetch(`${server.url}/${hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return /^URL: (.*)$/m.exec(await res.text())?.[1] as string;
}

describe('slices', () => {
  it("repo A's token cannot read B's narinfo or NAR, even knowing the NAR hash", async () => {
    const tokenA = await server.ciToken(A);
    const narB = await narUrlServed(pathB.hashPart, await server.ciToken(B));
    expect(await get(`${pathB.hashPart}.narinfo`, tokenA)).toBe(404);
    expect(await get(`${pathB.hashPart}.narinfo`, tokenA, 'HEAD')).toBe(404);
    expect(await get(narB, tokenA)).toBe(404);
    expect(await get(narB, tokenA, 'HEAD')).toBe(404);
    // …and the answer is the same as for a NAR that does not exist at all.
    const missing = await fetch(`${server.url}/nar/${'0'.repeat(52)}.nar`, {
      headers: { authorization: `Bearer ${tokenA}` },
    });
    const hidden = await fetch(`${server.url}/${narB}`, { headers: { authorization: `Bearer ${tokenA}` } });
    expect([hidden.status, await hidden.text()]).toEqual([
      404,
      (await missing.text()).replace('0'.repeat(52), narB.slice(4, 56)),
    ]);
    // A still reads its own.
    expect(await get(`${pathA.hashPart}.narinfo`, tokenA)).toBe(200);
    expect(await get(await narUrlServed(pathA.hashPart, tokenA), tokenA)).toBe(200);
  });

  it('an org-wide reader (policy or read token) sees both', async () => {
    for (const token of [await server.ciToken(OPS), await server.readToken(['acme/*'])]) {
      for (const upload of [pathA, pathB]) {
        expect(await get(`${upload.hashPart}.narinfo`, token)).toBe(200);
        expect(await get(await narUrlServed(upload.hashPart, token), token)).toBe(200);
      }
    }
  });

  it('a pull_request token reads but cannot write', async () => {
    const pr = await server.ciToken({ ...A, event_name: 'pull_request', ref: 'refs/pull/7/merge' });
    expect(await get(`${pathA.hashPart}.narinfo`, pr)).toBe(200);
    const [top] = await nixBuild(randomChainExpr(1, 300));
    const upload = await narUploadFor(top as string);
    const res = await putNar(pr, upload);
    expect(res.status).toBe(403);
    expect(await res.text()).toBe('this cache token grants no write slice\n');
    await expect(nixCopy(pr, top as string)).rejects.toThrow(
      /403|does not appear to be a binary cache|Forbidden/,
    );
    expect(await get(`${upload.hashPart}.narinfo`, await server.readToken(['*']))).toBe(404);
  });

  it('a public slice is readable without a token, and only it', async () => {
    expect(await get(`${pathOss.hashPart}.narinfo`, null)).toBe(200);
    expect(await get(pathOss.narUrl, null)).toBe(200);
    expect(await get(`${pathA.hashPart}.narinfo`, null)).toBe(404);
    // Real Nix substitutes it anonymously, trusting only the server key.
    const { closure } = await substituteFresh(server, pathOss.storePath);
    expect(closure).toEqual([pathOss.storePath]);
  });

  it('a NAR held only by another slice: HEAD says 404, the narinfo needs the bytes uploaded, which dedupes', async () => {
    const tokenA = await server.ciToken(A);
    // B's NAR, under A's write slice: A must prove it holds the bytes.
    expect(await get(pathB.narUrl, tokenA, 'HEAD')).toBe(404);
    const narinfoFirst = await fetch(`${server.url}/${pathB.hashPart}.narinfo`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokenA}` },
      body: serializeNarInfo(pathB.narinfo),
    });
    expect(narinfoFirst.status).toBe(400);
    expect(await narinfoFirst.text()).toContain(`was not uploaded to slice 'acme/app'`);
    // 201 though the bytes are stored already: the answer must not tell that another slice has them.
    expect(await pushRaw(server.url, tokenA, pathB)).toEqual([201, 201]);
    expect(await get(`${pathB.hashPart}.narinfo`, tokenA)).toBe(200);
  });

  it('a slice stays with the repository id that first wrote it (a re-registered name gets 403)', async () => {
    const impostor = await server.ciToken({ repository: 'acme/app', repository_id: '9999' });
    const [top] = await nixBuild(randomChainExpr(1, 300));
    const upload = await narUploadFor(top as string);
    const res = await putNar(impostor, upload);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("slice 'acme/app' belongs to another repository");
  });

  it('a slice named in the config is shared by every repository its write rules admit', async () => {
    for (const repo of [A, B]) {
      const token = await server.ciToken({ ...repo, event_name: 'release' });
      const [top] = await nixBuild(randomChainExpr(1, 300));
      const upload = await narUploadFor(top as string);
      expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
      expect(await get(`${upload.hashPart}.narinfo`, await server.readToken(['acme/releases']))).toBe(200);
    }
  });
});
