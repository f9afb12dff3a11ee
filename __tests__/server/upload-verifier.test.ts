/**
 * Uploads are hashed, decompressed and checked on worker threads (src/server/cache/verify-pool.ts),
 * real ones, started from the sources: sessions of one worker do not disturb each other, a refusal
 * comes back as the HttpError the client gets, and a worker that stops mid-upload fails that
 * upload with a 503 and leaves nothing stored, after which a new worker takes the next upload.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { HttpError } from '../../src/contracts/http-error.js';
import { Hash } from '../../src/nix/hash.js';
import type { NarLimits } from '../../src/nix/nar-hasher.js';
import { createCompressor } from '../../src/nix/nar.js';
import { VerifyPool, type UploadCheck } from '../../src/server/cache/verify-pool.js';
import { regularFileNar } from '../support/nar.js';
import { startTestServer, storedState, type TestServer } from '../support/server.js';

const MiB = 1024 * 1024;
const LIMITS: NarLimits = { maxNarSize: 64 * MiB, maxRatio: 1000, maxDecompressionMemory: 16 * MiB };
/** Whole SharedArrayBuffers, as the server's stages are (theirs are 1 MiB; any size works). */
const STAGE = 256 * 1024;

const zstd = (bytes: Buffer) => buffer(Readable.from([bytes]).pipe(createCompressor('zstd')));

/** Feeds `file` to `check` in stage-sized shared buffers, one at a time, as nar-verifier.ts does. */
async function feed(check: UploadCheck, file: Buffer): Promise<void> {
  for (let offset = 0; offset < file.length; offset += STAGE) {
    const stage = Buffer.from(new SharedArrayBuffer(STAGE));
    const length = file.copy(stage, 0, offset, offset + STAGE);
    await check.write(stage.subarray(0, length));
  }
}

const refusalOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => {
      expect(error).toBeInstanceOf(HttpError);
      const { status, reason, message } = error as HttpError;
      return { status, reason, message };
    },
  );

describe('the verification pool', () => {
  let pool: VerifyPool;
  let nar: Buffer;
  let file: Buffer;

  beforeAll(async () => {
    pool = new VerifyPool({ threads: 1 });
    nar = regularFileNar(randomBytes(MiB));
    file = await zstd(nar);
  });
  afterAll(async () => {
    await pool?.close();
  });

  it('two uploads on one worker: one refused at its first bytes, the other hashed as it should be', async () => {
    const good = pool.session('zstd', LIMITS);
    const bad = pool.session('zstd', LIMITS);
    expect(pool.running).toBe(1);
    const garbage = await zstd(Buffer.from('not a NAR at all, but compressed like one\n'.repeat(100)));
    const [refused] = await Promise.all([
      refusalOf(feed(bad, garbage).then(() => bad.end())),
      feed(good, file),
    ]);
    expect(refused).toEqual({
      status: 400,
      reason: 'not_a_nar',
      message: "the upload is not a NAR: it does not start with 'nix-archive-1'",
    });
    const digest = await good.end();
    expect(digest.narHash.equals(Hash.of('sha256', nar))).toBe(true);
    expect(digest.fileHash?.equals(Hash.of('sha256', file))).toBe(true);
    expect([digest.narSize, digest.fileSize]).toEqual([nar.length, file.length]);
    bad.destroy();
    good.destroy();
  });

  it('a worker stopped mid-upload fails it with a 503; the next upload gets a new worker', async () => {
    const check = pool.session('zstd', LIMITS);
    await feed(check, file.subarray(0, STAGE));
    await pool.close();
    const refused = await refusalOf(feed(check, file.subarray(STAGE)).then(() => check.end()));
    expect(refused?.status).toBe(503);
    expect(refused?.reason).toBe('verifier_stopped');
    expect(refused?.message).toMatch(/^the upload could not be verified: its verification thread stopped/);
    expect(pool.running).toBe(0);
    check.destroy();

    const next = pool.session('zstd', LIMITS);
    await feed(next, file);
    expect((await next.end()).narHash.equals(Hash.of('sha256', nar))).toBe(true);
    next.destroy();
    expect(pool.running).toBe(1);
  });
});

interface Answer {
  status: number;
  text: string;
  headers: IncomingHttpHeaders;
}

/** A PUT whose body is sent by hand, after the server's 100 Continue. */
function openUpload(url: string, path: string, token: string, length: number) {
  const { hostname, port } = new URL(url);
  const req = request({
    hostname,
    port,
    method: 'PUT',
    path,
    headers: { authorization: `Bearer ${token}`, expect: '100-continue', 'content-length': String(length) },
  });
  const continued = new Promise<void>((resolve) => req.on('continue', resolve));
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on('error', reject);
  });
  answer.catch(() => undefined);
  req.flushHeaders();
  return {
    continued,
    answer,
    send: (bytes: Buffer) => req.write(bytes),
    end: (bytes: Buffer) => req.end(bytes),
  };
}

describe('a verification worker that stops during an upload (real server)', () => {
  let server: TestServer;
  let pool: VerifyPool;

  beforeAll(async () => {
    pool = new VerifyPool({ threads: 1 });
    server = await startTestServer({ verifiers: pool });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('503 with Retry-After, nothing stored (no file, no temp file, no record); the retry is stored', async () => {
    const nar = regularFileNar(randomBytes(2 * MiB));
    const file = await zstd(nar);
    const path = `/_api/v1/nar/${Hash.of('sha256', nar).nix32}.nar.zst`;
    const token = await server.ciToken();
    const before = storedState(server.dataDir);

    const upload = openUpload(server.url, path, token, file.length);
    await upload.continued;
    upload.send(file.subarray(0, MiB));
    // The upload's check is on a worker once the server reads the body.
    for (let waited = 0; pool.running === 0 && waited < 100; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(pool.running).toBe(1);
    await pool.close();
    upload.end(file.subarray(MiB));
    const answer = await upload.answer;
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('2');
    expect(answer.text).toMatch(
      /^the upload could not be verified: its verification thread stopped .*nothing was stored, retry\n$/,
    );
    expect(storedState(server.dataDir)).toEqual(before);

    const retry = await fetch(`${server.url}${path}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: new Uint8Array(file),
    });
    expect(retry.status).toBe(201);
    expect(storedState(server.dataDir).files).toHaveLength(before.files.length + 1);
  });
});

describe('a verification worker that crashes during an upload (real server)', () => {
  let server: TestServer;
  let pool: VerifyPool;

  beforeAll(async () => {
    // The real worker, crashing at its second chunk (an uncaught error): see the support file.
    const script = join(import.meta.dirname, '..', 'support', 'crashing-verify-worker.ts');
    pool = new VerifyPool({ threads: 1, script });
    server = await startTestServer({ verifiers: pool });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('503 naming the crash, nothing stored; the next upload is checked by a new worker', async () => {
    const token = await server.ciToken();
    const put = async (nar: Buffer) => {
      const file = await zstd(nar);
      return fetch(`${server.url}/_api/v1/nar/${Hash.of('sha256', nar).nix32}.nar.zst`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}` },
        body: new Uint8Array(file),
      });
    };
    const before = storedState(server.dataDir);

    // Three 1 MiB stages: the worker dies at the second.
    const crashed = await put(regularFileNar(randomBytes(3 * MiB)));
    expect(crashed.status).toBe(503);
    expect(crashed.headers.get('retry-after')).toBe('2');
    expect(await crashed.text()).toBe(
      'the upload could not be verified: its verification thread stopped ' +
        '(the verification worker crashed on purpose, code 1); nothing was stored, retry\n',
    );
    expect(storedState(server.dataDir)).toEqual(before);
    expect(pool.running).toBe(0);

    // One stage only: the new worker checks it before its second chunk ever comes.
    const next = await put(regularFileNar(randomBytes(100 * 1024)));
    expect(next.status).toBe(201);
    expect(storedState(server.dataDir).files).toHaveLength(before.files.length + 1);
    expect(pool.running).toBe(1);
  });
});
