/**
 * Uploads that fail on S3 + PostgreSQL leave nothing in the bucket: bytes that do not hash to their
 * name, a truncated body, a narinfo with a wrong FileHash, and a replica killed (SIGKILL) in the
 * middle of a 200 MiB multipart upload, whose upload is collected and which another replica lands.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Hash } from '../../src/nix/hash.js';
import { serializeNarInfo } from '../../src/nix/narinfo.js';
import { S3BlobStore } from '../../src/server/storage/s3-blob-store.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { regularFileNar } from '../support/nar.js';
import { bucketContents, queryDatabase, sharedBackends, type SharedBackends } from '../support/backends.js';
import { narUploadFor, rawRequest, spawnCli, startTestServer, type TestServer } from '../support/server.js';

const MiB = 1024 * 1024;
let shared: SharedBackends;
let server: TestServer;
let writer: string;

beforeAll(async () => {
  shared = await sharedBackends();
  server = await startTestServer({ yaml: shared.yaml });
  writer = await server.ciToken();
});
afterAll(async () => {
  await server?.close();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function rows(table: string): Promise<number> {
  return Number(
    (await queryDatabase<{ n: string }>(shared.databaseUrl, `SELECT count(*) AS n FROM ${table}`))[0]!.n,
  );
}

/** Polls (up to 10 s) until the bucket holds exactly `objects` and no unfinished upload. */
async function bucketSettles(objects: string[]): Promise<{ objects: string[]; uploads: string[] }> {
  let contents = await bucketContents(shared.bucket);
  for (
    let i = 0;
    i < 100 && (contents.uploads.length > 0 || contents.objects.length !== objects.length);
    i++
  ) {
    await sleep(100);
    contents = await bucketContents(shared.bucket);
  }
  return contents;
}

describe('bad uploads on S3 leave nothing in the bucket', () => {
  it('a NAR file (several parts) whose bytes do not hash to its name (a wrong FileHash): 400', async () => {
    const bytes = regularFileNar(randomBytes(12 * MiB));
    const res = await rawRequest(server.url, 'PUT', `/nar/${'0'.repeat(52)}.nar`, {
      headers: auth(writer),
      body: bytes,
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain(
      `NAR file hashes to ${Hash.of('sha256', bytes).toString()}, not to sha256:${'0'.repeat(52)}`,
    );
    expect(await bucketSettles([])).toEqual({ objects: [], uploads: [] });
    expect(await rows('slice_nars')).toBe(0);
  });

  it('a NAR whose bytes do not match the NarHash it is uploaded as: 400', async () => {
    const res = await rawRequest(server.url, 'PUT', `/_api/v1/nar/${'1'.repeat(52)}.nar`, {
      headers: auth(writer),
      body: regularFileNar(randomBytes(7 * MiB)),
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain(`not to sha256:${'1'.repeat(52)} as its name says`);
    expect(await bucketSettles([])).toEqual({ objects: [], uploads: [] });
  });

  it('a truncated upload, the connection dropped after two parts went to the bucket', async () => {
    const bytes = regularFileNar(randomBytes(14 * MiB));
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      `PUT /nar/${Hash.of('sha256', bytes).nix32}.nar HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${writer}\r\ncontent-length: ${bytes.length}\r\n\r\n`,
    );
    socket.write(bytes.subarray(0, 12 * MiB));
    // Wait until the multipart upload has begun in the bucket, then drop the connection.
    for (let i = 0; i < 100 && (await bucketContents(shared.bucket)).uploads.length === 0; i++)
      await sleep(100);
    expect((await bucketContents(shared.bucket)).uploads).toHaveLength(1);
    socket.destroy();
    expect(await bucketSettles([])).toEqual({ objects: [], uploads: [] });
    expect(await rows('slice_nars')).toBe(0);
  });

  it('a narinfo with a wrong FileHash: 400, no narinfo; the bucket holds only the NAR uploaded before it', async () => {
    const upload = await narUploadFor((await nixBuild(randomChainExpr(1, 1000)))[0]!);
    const nar = await rawRequest(server.url, 'PUT', `/${upload.narUrl}`, {
      headers: auth(writer),
      body: upload.nar,
    });
    expect(nar.status).toBe(201);
    const res = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: serializeNarInfo({ ...upload.narinfo, fileHash: Hash.of('sha256', 'x') }),
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain('FileHash sha256:');
    expect(await rows('narinfos')).toBe(0);
    expect(await bucketSettles([upload.narUrl])).toEqual({
      objects: [`cache/${upload.narUrl.slice('nar/'.length)}`],
      uploads: [],
    });
  });
});

/** `sluice serve` as its own process on the shared config; resolves with its URL once it listens. */
async function spawnReplica(): Promise<{ url: string; child: ReturnType<typeof spawnCli> }> {
  const cwd = mkdtempSync(join(tmpdir(), 'sluice-replica-'));
  writeFileSync(join(cwd, 'sluice.yml'), shared.yaml);
  const child = spawnCli(['serve', '--config', 'sluice.yml', '--listen', '127.0.0.1:0'], { cwd });
  child.stdout.resume();
  let banner = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      banner += chunk;
      const found = /serving the cache at (http:\/\/\S+)\n/.exec(banner);
      if (found) resolve(found[1]!);
    });
    child.once('exit', (code) => reject(new Error(`replica exited with ${code}: ${banner}`)));
  });
  return { url, child };
}

describe('a replica killed in the middle of a 200 MiB multipart upload', () => {
  it('leaves nothing visible; its upload is collected; a retry through the other replica lands it', async () => {
    const bytes = regularFileNar(randomBytes(200 * MiB));
    const key = `${Hash.of('sha256', bytes).nix32}.nar`;
    const before = (await bucketContents(shared.bucket)).objects;
    const replica = await spawnReplica();
    const exited = once(replica.child, 'exit');

    const { port } = new URL(replica.url);
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: `/nar/${key}`,
      headers: { ...auth(writer), 'content-length': bytes.length },
    });
    req.on('error', () => undefined);
    req.write(bytes.subarray(0, 120 * MiB));
    // Kill it once parts are in the bucket: a multipart upload is under way.
    for (let i = 0; i < 200 && (await bucketContents(shared.bucket)).uploads.length === 0; i++)
      await sleep(100);
    expect((await bucketContents(shared.bucket)).uploads).toEqual([`cache/${key}`]);
    replica.child.kill('SIGKILL');
    await exited;
    req.destroy();

    // Nothing of it is visible: not to the writer's HEAD, not as an object.
    const head = await fetch(`${server.url}/nar/${key}`, { method: 'HEAD', headers: auth(writer) });
    expect(head.status).toBe(404);
    expect((await bucketContents(shared.bucket)).objects).toEqual(before);
    // The start-up sweep (as run by a replica started after its age limit) collects the upload.
    const sweeper = new S3BlobStore({ ...shared.bucket, partSize: 5 * MiB });
    expect(await sweeper.abortIncompleteUploads(new Date(Date.now() + 1000))).toBe(1);
    await sweeper.close();
    expect((await bucketContents(shared.bucket)).uploads).toEqual([]);

    const retry = await rawRequest(server.url, 'PUT', `/nar/${key}`, { headers: auth(writer), body: bytes });
    expect(retry.status).toBe(201);
    const landed = await fetch(`${server.url}/nar/${key}`, { method: 'HEAD', headers: auth(writer) });
    expect([landed.status, landed.headers.get('content-length')]).toEqual([200, String(bytes.length)]);
    expect(await bucketSettles([...before, `cache/${key}`])).toEqual({
      objects: [...before, `cache/${key}`].sort(),
      uploads: [],
    });
  }, 180_000);
});
