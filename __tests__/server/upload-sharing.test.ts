/**
 * Issue 19, finding 3: NAR files shared across slices must not let the first uploader choose the
 * bytes everyone gets, nor tell an uploader whether another slice holds a NAR. Attacks, as an
 * attacker with an ordinary write token for its own slice (acme/evil) would make them, against an
 * honest owner (acme/app) pushing the same store path afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import { parseNarInfo, serializeNarInfo } from '../../src/nix/narinfo.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  rawRequest,
  startTestServer,
  storedState,
  substituteFresh,
  type NarUpload,
  type TestServer,
  zstdFile as zstd,
} from '../support/server.js';

const MiB = 1024 * 1024;
const EVIL = { repository: 'acme/evil', repository_id: '6666' };
const APP = { repository: 'acme/app', repository_id: '1001' };

let server: TestServer;
let evil: string;
let app: string;

beforeAll(async () => {
  server = await startTestServer();
  [evil, app] = await Promise.all([server.ciToken(EVIL), server.ciToken(APP)]);
});
afterAll(async () => {
  await server?.close();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function freshUpload(): Promise<NarUpload> {
  return narUploadFor((await nixBuild(randomChainExpr(1, 5000)))[0] as string);
}

const putByNarHash = (token: string, upload: NarUpload, body: Buffer, extension = '.zst') =>
  rawRequest(server.url, 'PUT', `/_api/v1/nar/${upload.narinfo.narHash.nix32}.nar${extension}`, {
    headers: auth(token),
    body,
  });

const putByFileHash = (token: string, body: Buffer, extension = '.zst') =>
  rawRequest(server.url, 'PUT', `/nar/${Hash.of('sha256', body).nix32}.nar${extension}`, {
    headers: auth(token),
    body,
  });

/** 32 MiB of zstd skippable frames: the decoder ignores them, the file carries them. */
function skippablePadding(bytes: number): Buffer {
  const header = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
  header.writeUInt32LE(bytes - 8, 4);
  return Buffer.concat([header, Buffer.alloc(bytes - 8)]);
}

describe('padding is refused', () => {
  it('a NAR padded with 32 MiB of skippable zstd frames: 400 on both routes, nothing stored', async () => {
    const upload = await freshUpload();
    const padded = Buffer.concat([await zstd(upload.nar), skippablePadding(32 * MiB)]);
    const before = storedState(server.dataDir);
    const byNarHash = await putByNarHash(evil, upload, padded);
    expect(byNarHash.status).toBe(400);
    expect(byNarHash.text).toMatch(
      /^zstd skippable frame at byte \d+: padding is not accepted in a NAR file\n$/,
    );
    const byFileHash = await putByFileHash(evil, padded);
    expect(byFileHash.status).toBe(400);
    expect(byFileHash.text).toContain('padding is not accepted');
    expect(storedState(server.dataDir)).toEqual(before);
  });

  it('data after the NAR, compressed or not: 400 naming where the NAR ends', async () => {
    const upload = await freshUpload();
    const trailing = Buffer.concat([upload.nar, Buffer.alloc(4096)]);
    for (const [body, extension] of [
      [trailing, ''],
      [await zstd(trailing), '.zst'],
    ] as const) {
      const res = await putByFileHash(evil, body, extension);
      expect(res.status).toBe(400);
      expect(res.text).toBe(`the NAR ends at byte ${upload.nar.length}, but more data follows it\n`);
    }
  });

  it('xz stream padding (zero bytes after the stream, which xz skips): 400', async () => {
    const upload = await freshUpload();
    const xz = await buffer(Readable.from([upload.nar]).pipe(createCompressor('xz')));
    const padded = Buffer.concat([xz, Buffer.alloc(MiB)]);
    const res = await putByFileHash(evil, padded, '.xz');
    expect(res.status).toBe(400);
    expect(res.text).toContain(
      `holds a NAR of ${upload.nar.length} bytes: more than xz adds, and padding is not accepted`,
    );
  });
});

describe('the first uploader does not choose the bytes', () => {
  it("another slice's earlier file for the same NarHash: the owner's upload stores and answers its own bytes", async () => {
    const upload = await freshUpload();
    // The attacker reproduces the NAR and uploads its own encoding of it first.
    const attackers = await zstd(upload.nar, 19);
    const honest = await zstd(upload.nar);
    expect(attackers.equals(honest)).toBe(false);
    expect((await putByNarHash(evil, upload, attackers)).status).toBe(201);

    const res = await putByNarHash(app, upload, honest);
    expect(res.status).toBe(201);
    const answer = JSON.parse(res.text) as { url: string; file_hash: string; file_size: number };
    expect([answer.file_hash, answer.file_size]).toEqual([
      Hash.of('sha256', honest).toString(),
      honest.length,
    ]);

    // The honest narinfo is accepted, served, and the file served is the honest one.
    const narinfo = serializeNarInfo({
      ...upload.narinfo,
      url: answer.url,
      compression: 'zstd',
      fileHash: Hash.parse(answer.file_hash),
      fileSize: answer.file_size,
    });
    const put = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(app),
      body: narinfo,
    });
    expect(put.status).toBe(201);
    const reader = await server.readToken(['acme/app']);
    const served = parseNarInfo(
      await (await fetch(`${server.url}/${upload.hashPart}.narinfo`, { headers: auth(reader) })).text(),
    );
    expect([served.fileHash?.toString(), served.fileSize]).toEqual([
      Hash.of('sha256', honest).toString(),
      honest.length,
    ]);
    const file = await fetch(`${server.url}/${served.url}`, { headers: auth(reader) });
    expect(Buffer.from(await file.arrayBuffer()).equals(honest)).toBe(true);
    const { closure } = await substituteFresh(server, upload.storePath, reader);
    expect(closure).toEqual([upload.storePath]);
  });
});

describe('an upload does not tell whether another slice holds the file', () => {
  it('the same answer (status and body) whether or not another slice uploaded the NAR first', async () => {
    const [shared, alone] = [await freshUpload(), await freshUpload()];
    // Nix's route: the attacker first stores the very bytes the owner will upload.
    const sharedFile = await zstd(shared.nar);
    const aloneFile = await zstd(alone.nar);
    expect((await putByFileHash(evil, sharedFile)).status).toBe(201);
    const afterOther = await putByFileHash(app, sharedFile);
    const firstOne = await putByFileHash(app, aloneFile);
    expect([afterOther.status, afterOther.text]).toEqual([201, '']);
    expect([firstOne.status, firstOne.text]).toEqual([201, '']);
    // 200 only for the slice's own earlier upload.
    expect((await putByFileHash(app, sharedFile)).status).toBe(200);

    // The Action's route: the answer describes only the bytes uploaded, whoever holds what.
    expect((await putByNarHash(evil, shared, sharedFile)).status).toBe(201);
    const viaNarHash = await putByNarHash(app, shared, sharedFile);
    const aloneViaNarHash = await putByNarHash(app, alone, aloneFile);
    expect(viaNarHash.status).toBe(201);
    expect(aloneViaNarHash.status).toBe(201);
    expect(JSON.parse(viaNarHash.text)).toMatchObject({
      file_hash: Hash.of('sha256', sharedFile).toString(),
      file_size: sharedFile.length,
    });
  });
});
