/**
 * `PUT /_api/v1/nar/<narhash>.nar[.ext]`, the route the Action's proxy streams NARs to: the NAR
 * inside must hash to the name; the answer gives the narinfo its URL, FileSize and, unless the
 * upload asked for none (`?file_hash=omit`, as the proxy does), FileHash; a fresh store substitutes
 * the result. Bad uploads get a 4xx naming the problem and change nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Readable } from 'node:stream';
import { Hash } from '../../src/nix/hash.js';
import { parseNarInfo, serializeNarInfo } from '../../src/nix/narinfo.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  rawRequest,
  startTestServer,
  storedState,
  substituteFresh,
  type NarUpload,
  type StoredState,
  type TestServer,
  zstdFile as zstd,
} from '../support/server.js';

const MAX_NAR = 256 * 1024;
let server: TestServer;
let writer: string;

beforeAll(async () => {
  server = await startTestServer({ maxNarSize: MAX_NAR });
  writer = await server.ciToken();
});
afterAll(async () => {
  await server?.close();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function freshUpload(bytes = 1000): Promise<NarUpload> {
  return narUploadFor((await nixBuild(randomChainExpr(1, bytes)))[0] as string);
}

const uploadPath = (upload: NarUpload, extension = '.zst') =>
  `/_api/v1/nar/${upload.narinfo.narHash.nix32}.nar${extension}`;

describe('a good upload', () => {
  it('is stored under its NarHash, answers the file facts, and a narinfo using them makes a working cache', async () => {
    const upload = await freshUpload();
    const file = await zstd(upload.nar);

    const res = await rawRequest(server.url, 'PUT', uploadPath(upload), {
      headers: auth(writer),
      body: file,
    });
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toBe('application/json');
    const answer = JSON.parse(res.text) as Record<string, unknown>;
    // The slice's own name for the file (narHashKey): not the NarHash, which any slice could claim.
    const key = (answer.url as string).slice('nar/'.length);
    expect(key).toMatch(/^[0-9a-z]{52}\.nar\.zst$/);
    expect(key).not.toContain(upload.narinfo.narHash.nix32);
    expect(answer).toEqual({
      url: `nar/${key}`,
      compression: 'zstd',
      file_hash: Hash.of('sha256', file).toString(),
      file_size: file.length,
      nar_hash: upload.narinfo.narHash.toString(),
      nar_size: upload.nar.length,
    });
    expect(storedState(server.dataDir).files).toContain(key);

    const narinfo = serializeNarInfo({
      ...upload.narinfo,
      url: answer.url as string,
      compression: 'zstd',
      fileHash: Hash.parse(answer.file_hash as string),
      fileSize: answer.file_size as number,
    });
    const put = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: narinfo,
    });
    expect(put.status).toBe(201);

    // What the server serves states the file it computed, and that file is the one uploaded.
    const reader = await server.readToken(['acme/*']);
    const served = parseNarInfo(
      await (await fetch(`${server.url}/${upload.hashPart}.narinfo`, { headers: auth(reader) })).text(),
    );
    expect([served.url, served.fileHash?.toString(), served.fileSize]).toEqual([
      `nar/${key}`,
      Hash.of('sha256', file).toString(),
      file.length,
    ]);
    const nar = await fetch(`${server.url}/nar/${key}`, { headers: auth(reader) });
    expect(Buffer.from(await nar.arrayBuffer())).toEqual(file);

    const { machine, store, closure } = await substituteFresh(server, upload.storePath, reader);
    expect(closure).toEqual([upload.storePath]);
    // The substituted contents are the built ones (the NAR hash of the files on disk).
    const onDisk = await nix('nix-hash', ['--type', 'sha256', '--base32', `${store}${upload.storePath}`], {
      machine,
    });
    expect(onDisk.trim()).toBe(upload.narinfo.narHash.nix32);
  });

  it('the same NAR compressed differently: 200, answering the facts of the file already stored', async () => {
    const upload = await freshUpload();
    const first = await zstd(upload.nar, 1);
    const second = await zstd(upload.nar, 19);
    expect(second.equals(first)).toBe(false);
    const put = (body: Buffer) =>
      rawRequest(server.url, 'PUT', uploadPath(upload), { headers: auth(writer), body });
    const created = await put(first);
    expect(created.status).toBe(201);
    const { url } = JSON.parse(created.text) as { url: string };
    const again = await put(second);
    expect(again.status).toBe(200);
    expect(JSON.parse(again.text)).toMatchObject({
      file_hash: Hash.of('sha256', first).toString(),
      file_size: first.length,
    });
    // A narinfo stating the second file's hash is refused: it is not what the server serves.
    const wrong = serializeNarInfo({
      ...upload.narinfo,
      url,
      compression: 'zstd',
      fileHash: Hash.of('sha256', second),
      fileSize: first.length,
    });
    const res = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: wrong,
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain(`does not match the file uploaded (${Hash.of('sha256', first).toString()})`);
  });
});

describe('an upload without a FileHash (?file_hash=omit)', () => {
  const omitting = (upload: NarUpload) => `${uploadPath(upload)}?file_hash=omit`;

  it('answers no file_hash; its narinfo states none, and Nix substitutes it', async () => {
    const upload = await freshUpload();
    const file = await zstd(upload.nar);
    const res = await rawRequest(server.url, 'PUT', omitting(upload), { headers: auth(writer), body: file });
    expect(res.status).toBe(201);
    const answer = JSON.parse(res.text) as Record<string, unknown>;
    expect(answer).toEqual({
      url: answer.url,
      compression: 'zstd',
      file_size: file.length,
      nar_hash: upload.narinfo.narHash.toString(),
      nar_size: upload.nar.length,
    });
    const narinfo = { ...upload.narinfo, url: answer.url as string, compression: 'zstd' as const };
    delete narinfo.fileHash;

    // A FileHash the server never computed cannot be checked, even the right one: refused, nothing stored.
    const before = storedState(server.dataDir);
    const stating = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: serializeNarInfo({ ...narinfo, fileHash: Hash.of('sha256', file), fileSize: file.length }),
    });
    expect([stating.status, stating.text]).toEqual([
      400,
      `FileHash ${Hash.of('sha256', file).toString()} cannot be checked: its NAR ${answer.url as string} ` +
        'was uploaded without one (file_hash=omit), so the narinfo must state none\n',
    ]);
    expect(storedState(server.dataDir)).toEqual(before);

    const put = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: serializeNarInfo({ ...narinfo, fileSize: file.length }),
    });
    expect(put.status).toBe(201);
    const reader = await server.readToken(['acme/*']);
    const text = await (
      await fetch(`${server.url}/${upload.hashPart}.narinfo`, { headers: auth(reader) })
    ).text();
    expect(text).not.toContain('FileHash:');
    expect(parseNarInfo(text).fileSize).toBe(file.length);
    const { closure } = await substituteFresh(server, upload.storePath, reader);
    expect(closure).toEqual([upload.storePath]);
  });

  it("the same NAR again, compressed differently: 200 with the stored file's size, still no file_hash", async () => {
    const upload = await freshUpload();
    const first = await zstd(upload.nar, 1);
    const second = await zstd(upload.nar, 19);
    const put = (body: Buffer) =>
      rawRequest(server.url, 'PUT', omitting(upload), { headers: auth(writer), body });
    expect((await put(first)).status).toBe(201);
    const again = await put(second);
    expect(again.status).toBe(200);
    const answer = JSON.parse(again.text) as Record<string, unknown>;
    expect([answer.file_size, 'file_hash' in answer]).toEqual([first.length, false]);
  });

  it.each(['file_hash=skip', 'file_hash=omit&x=1', 'file_hash=', 'x=1'])(
    'a query of ?%s: 400, nothing stored',
    async (query) => {
      const upload = await freshUpload();
      const before = storedState(server.dataDir);
      const res = await rawRequest(server.url, 'PUT', `${uploadPath(upload)}?${query}`, {
        headers: auth(writer),
        body: await zstd(upload.nar),
      });
      expect([res.status, res.text]).toEqual([
        400,
        "the NAR upload's query must be 'file_hash=omit' or none\n",
      ]);
      expect(storedState(server.dataDir)).toEqual(before);
    },
  );
});

describe('uploads that do not check out', () => {
  let upload: NarUpload;
  let before: StoredState;

  beforeAll(async () => {
    upload = await freshUpload();
  });
  beforeEach(() => {
    before = storedState(server.dataDir);
  });
  const expectUnchanged = () => expect(storedState(server.dataDir)).toEqual(before);

  it('a NAR that does not hash to the name: 400 naming both hashes', async () => {
    const other = await freshUpload();
    const res = await rawRequest(server.url, 'PUT', uploadPath(upload), {
      headers: auth(writer),
      body: await zstd(other.nar),
    });
    expect(res.status).toBe(400);
    expect(res.text).toBe(
      `NAR hashes to ${other.narinfo.narHash.toString()}, not to ${upload.narinfo.narHash.toString()} as its name says\n`,
    );
    expectUnchanged();
    expect(before.files).not.toContain(`${upload.narinfo.narHash.nix32}.nar.zst`);
  });

  it('a file that is not what its extension says, or is corrupt: 400', async () => {
    const file = await zstd(upload.nar);
    const asXz = await rawRequest(server.url, 'PUT', uploadPath(upload, '.xz'), {
      headers: auth(writer),
      body: file,
    });
    expect(asXz.status).toBe(400);
    expect(asXz.text).toContain('NAR file does not decompress as xz');

    const corrupt = Buffer.from(file);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0xff;
    const damaged = await rawRequest(server.url, 'PUT', uploadPath(upload), {
      headers: auth(writer),
      body: corrupt,
    });
    expect(damaged.status).toBe(400);
    expect(damaged.text).toContain('NAR file does not decompress as zstd');
    expectUnchanged();
  });

  it('no token: 401; a read-only token: 403; neither is asked for the body', async () => {
    const put = (headers: Record<string, string>) =>
      rawRequest(server.url, 'PUT', uploadPath(upload, ''), {
        headers: { ...headers, expect: '100-continue' },
        body: upload.nar,
      });
    const anonymous = await put({});
    expect([anonymous.status, anonymous.continued, anonymous.text]).toEqual([
      401,
      false,
      'uploads need a cache token with a write slice\n',
    ]);
    const reader = await put(auth(await server.readToken(['*'])));
    expect([reader.status, reader.continued, reader.text]).toEqual([
      403,
      false,
      'this cache token grants no write slice\n',
    ]);
    expectUnchanged();
  });

  it('too large: 413 from Content-Length, and while streaming without one', async () => {
    const big = await freshUpload(MAX_NAR + 1024);
    const declared = await rawRequest(server.url, 'PUT', uploadPath(big, ''), {
      headers: { ...auth(writer), expect: '100-continue' },
      body: big.nar,
    });
    expect([declared.status, declared.continued]).toEqual([413, false]);
    expect(declared.text).toContain(`is larger than the limit of ${MAX_NAR} bytes`);

    const streamed = await fetch(`${server.url}${uploadPath(big, '')}`, {
      method: 'PUT',
      headers: auth(writer),
      body: Readable.toWeb(Readable.from([big.nar])),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await streamed.text()).toBe(`NAR file is larger than the limit of ${MAX_NAR} bytes\n`);
    expectUnchanged();
  });

  it.each([
    ['PUT', '/_api/v1/nar/xyz.nar.zst', 400, 'is not _api/v1/nar/<52-character nix32 NarHash>.nar[.zst|.xz]'],
    ['PUT', `/_api/v1/nar/${'0'.repeat(52)}.nar.bz2`, 400, "unsupported NAR compression '.bz2'"],
    ['GET', `/_api/v1/nar/${'0'.repeat(52)}.nar.zst`, 405, 'GET is not allowed'],
  ])('%s %s → %i', async (method, path, status, message) => {
    const res = await rawRequest(server.url, method, path, {
      headers: auth(writer),
      ...(method === 'PUT' ? { body: 'x' } : {}),
    });
    expect(res.status).toBe(status);
    expect(res.text).toContain(message);
    expectUnchanged();
  });
});
