/**
 * What one upload may cost the server (issue 19 finding 6, issue 18 item 6), attacked through the
 * real server with real xz and zstd files: decompression bombs (not a NAR, a NAR declaring a huge
 * file, many files past the limit, an absurd ratio), decoder memory (a 192 MiB xz dictionary, a
 * 128 MiB zstd window), uploads held open (per-token and global caps) and idle bodies.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { crc32 } from 'node:zlib';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import { directoryNar, regularFileHeader, regularFileNar, regularFileTrailer } from '../support/nar.js';
import { startTestServer, storedState, type TestServer } from '../support/server.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });

function compress(chunks: Iterable<Buffer>, compression: 'zstd' | 'xz', level?: number): Promise<Buffer> {
  return buffer(
    Readable.from(chunks).pipe(createCompressor(compression, level === undefined ? {} : { level })),
  );
}

function* zeros(bytes: number): Generator<Buffer> {
  const chunk = Buffer.alloc(MiB);
  for (let left = bytes; left > 0; left -= chunk.length)
    yield chunk.subarray(0, Math.min(left, chunk.length));
}

interface Answer {
  status: number;
  text: string;
  headers: IncomingHttpHeaders;
}

/**
 * A PUT with `Expect: 100-continue` whose body is sent by hand: `continued` says whether the server
 * asked for it; `send` and `end` write it; `answer` is the response.
 */
function openUpload(url: string, path: string, token: string, length: number) {
  const { hostname, port } = new URL(url);
  let onContinue: (asked: boolean) => void = () => undefined;
  const continued = new Promise<boolean>((resolve) => (onContinue = resolve));
  const req = request({
    hostname,
    port,
    method: 'PUT',
    path,
    headers: { ...auth(token), expect: '100-continue', 'content-length': String(length) },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      onContinue(false);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on('error', reject);
  });
  answer.catch(() => undefined);
  req.on('continue', () => onContinue(true));
  req.flushHeaders();
  return {
    continued,
    answer,
    send: (bytes: Buffer) => req.write(bytes),
    end: (bytes: Buffer) => req.end(bytes),
  };
}

const put = (server: TestServer, token: string, path: string, body: Buffer) =>
  fetch(`${server.url}${path}`, { method: 'PUT', headers: auth(token), body: new Uint8Array(body) }).then(
    async (res) => ({ status: res.status, text: await res.text() }),
  );

/** Nix's route: the file named by its own hash. */
const fileHashPath = (file: Buffer, extension: string) =>
  `/nar/${Hash.of('sha256', file).nix32}.nar${extension}`;

/** A copy of an xz file whose first block declares another LZMA2 dictionary (props byte, 40 sizes). */
function withXzDictionary(xz: Buffer, props: number): Buffer {
  const file = Buffer.from(xz);
  const start = 12; // the block header follows the 12-byte stream header
  const size = (file[start]! + 1) * 4;
  const flags = file[start + 1]!;
  expect(flags & 3).toBe(0); // one filter
  let at = start + 2;
  const skipVarint = () => {
    while (file[at++]! & 0x80);
  };
  if (flags & 0x40) skipVarint(); // compressed size
  if (flags & 0x80) skipVarint(); // uncompressed size
  expect([file[at], file[at + 1]]).toEqual([0x21, 1]); // LZMA2, one byte of properties
  file[at + 2] = props;
  file.writeUInt32LE(crc32(file.subarray(start, start + size - 4)), start + size - 4);
  return file;
}

/** A copy of a zstd file whose first frame declares another window (RFC 8878 window descriptor). */
function withZstdWindow(zst: Buffer, descriptor: number): Buffer {
  const file = Buffer.from(zst);
  expect(file.readUInt32LE(0)).toBe(0xfd2fb528);
  expect(file[4]! & 0x20).toBe(0); // not single-segment: the window descriptor is the next byte
  file[5] = descriptor;
  return file;
}

describe('decompression bombs and decoder memory (default limits)', () => {
  let server: TestServer;
  let writer: string;
  /** 128 MiB of zeros as one zstd frame (~4 KiB). */
  let zeroFrame: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    writer = await server.ciToken();
    zeroFrame = await compress(zeros(128 * MiB), 'zstd');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('~400 KB of zstd that inflates to 12 GiB of zeros, not a NAR: 400 at once, nothing stored', async () => {
    const bomb = Buffer.concat(Array.from({ length: 96 }, () => zeroFrame));
    expect(bomb.length).toBeLessThan(MiB);
    const before = storedState(server.dataDir);
    const res = await put(server, writer, fileHashPath(bomb, '.zst'), bomb);
    expect(res).toEqual({
      status: 400,
      text: "the upload is not a NAR: it does not start with 'nix-archive-1'\n",
    });
    expect(storedState(server.dataDir)).toEqual(before);
  });

  it('a NAR declaring a 12 GiB file (past max_nar_size, 10 GiB): 413 before its contents are inflated', async () => {
    const size = 12 * GiB;
    const bomb = Buffer.concat([
      await compress([regularFileHeader(size)], 'zstd'),
      ...Array.from({ length: 96 }, () => zeroFrame),
      await compress([regularFileTrailer(size)], 'zstd'),
    ]);
    const res = await put(server, writer, fileHashPath(bomb, '.zst'), bomb);
    expect(res).toEqual({
      status: 413,
      text: `the NAR is larger than the limit of ${10 * GiB} bytes (it declares a file that takes it past the limit)\n`,
    });
  });

  it('a NAR inflating to more than 1000 times its upload (past 64 MiB): 413 naming the ratio', async () => {
    const size = 256 * MiB;
    const file = await compress([regularFileHeader(size), ...zeros(size), regularFileTrailer(size)], 'zstd');
    const res = await put(server, writer, fileHashPath(file, '.zst'), file);
    expect(res.status).toBe(413);
    expect(res.text).toMatch(
      /^the upload decompresses to more than 1000 times its size \(\d+ NAR bytes from \d+ bytes so far\)\n$/,
    );
  });

  it('a small xz file declaring a 192 MiB dictionary: 400 naming the 16 MiB limit', async () => {
    const nar = regularFileNar(Buffer.from('a small file\n'));
    const xz = await compress([nar], 'xz', 0);
    const res = await put(
      server,
      writer,
      fileHashPath(withXzDictionary(xz, 31), '.xz'),
      withXzDictionary(xz, 31),
    );
    expect(res).toEqual({
      status: 400,
      text: 'xz data needs more memory to decompress than the limit of 16 MiB (its dictionary is larger) (max_decompression_memory)\n',
    });
    // The same file declaring an 8 MiB dictionary (xz -6, as nix copy writes) is fine.
    const modest = withXzDictionary(xz, 22);
    expect((await put(server, writer, fileHashPath(modest, '.xz'), modest)).status).toBe(201);
  });

  it('a zstd frame declaring a 128 MiB window: 400 naming the 16 MiB limit', async () => {
    const zst = await compress([regularFileNar(Buffer.from('a small file\n'))], 'zstd');
    const wide = withZstdWindow(zst, 17 << 3); // 2^(10+17) = 128 MiB
    const res = await put(server, writer, fileHashPath(wide, '.zst'), wide);
    expect(res).toEqual({
      status: 400,
      text: 'zstd frame at byte 0 needs a 128 MiB window to decompress, over the limit of 16 MiB (max_decompression_memory)\n',
    });
    const modest = withZstdWindow(zst, 13 << 3); // 8 MiB, zstd -19
    expect((await put(server, writer, fileHashPath(modest, '.zst'), modest)).status).toBe(201);
  });
});

describe('a NAR of many files, each small, past max_nar_size together', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ maxNarSize: 8 * MiB });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('413 once NarSize passes the limit, though the upload is a few KiB', async () => {
    const nar = directoryNar(['a', 'b', 'c', 'd'].map((name) => [name, Buffer.alloc(4 * MiB)]));
    const file = await compress([nar], 'zstd');
    expect(file.length).toBeLessThan(64 * 1024);
    const res = await put(server, await server.ciToken(), fileHashPath(file, '.zst'), file);
    expect(res.status).toBe(413);
    expect(res.text).toMatch(new RegExp(`^the NAR is larger than the limit of ${8 * MiB} bytes`));
  });
});

describe('uploads held open', () => {
  let server: TestServer;
  let file: Buffer;
  let path: string;

  beforeAll(async () => {
    server = await startTestServer({
      uploads: { maxConcurrentUploads: 2, maxConcurrentUploadsPerToken: 1, bodyIdleTimeoutMs: 300 },
    });
    const nar = regularFileNar(Buffer.from('held open\n'.repeat(1000)));
    file = await compress([nar], 'zstd');
    path = `/_api/v1/nar/${Hash.of('sha256', nar).nix32}.nar.zst`;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('per token 429, in all 503, both with Retry-After and without asking for the body; a freed slot is reused', async () => {
    const [a, b, c] = await Promise.all([
      server.ciToken({ repository: 'acme/a', repository_id: '1' }),
      server.ciToken({ repository: 'acme/b', repository_id: '2' }),
      server.ciToken({ repository: 'acme/c', repository_id: '3' }),
    ]);
    const held = openUpload(server.url, path, a, file.length);
    expect(await held.continued).toBe(true);
    held.send(file.subarray(0, 10));

    const again = openUpload(server.url, path, a, file.length);
    expect(await again.continued).toBe(false);
    const tooMany = await again.answer;
    expect([tooMany.status, tooMany.headers['retry-after']]).toEqual([429, '2']);
    expect(tooMany.text).toMatch(
      /^this token already has 1 uploads in progress.*max_concurrent_uploads_per_token/,
    );

    const second = openUpload(server.url, path, b, file.length);
    expect(await second.continued).toBe(true);
    second.send(file.subarray(0, 10));
    const third = openUpload(server.url, path, c, file.length);
    expect(await third.continued).toBe(false);
    const full = await third.answer;
    expect([full.status, full.headers['retry-after']]).toEqual([503, '2']);
    expect(full.text).toMatch(/^the server has 2 uploads in progress.*max_concurrent_uploads/);

    held.end(file.subarray(10));
    second.end(file.subarray(10));
    expect((await held.answer).status).toBe(201);
    expect((await second.answer).status).toBe(201);
    expect((await put(server, c, path, file)).status).toBe(201);
  });

  it('a body that goes quiet: 408 after body_idle_timeout, nothing stored, the slot freed', async () => {
    const token = await server.ciToken({ repository: 'acme/slow', repository_id: '4' });
    const before = storedState(server.dataDir);
    const slow = openUpload(server.url, path, token, file.length);
    expect(await slow.continued).toBe(true);
    slow.send(file.subarray(0, 10));
    const answer = await slow.answer;
    expect(answer.status).toBe(408);
    expect(answer.text).toBe('the request body sent nothing for 0.3 s (body_idle_timeout): abandoned\n');
    expect(answer.headers.connection).toBe('close');
    expect(storedState(server.dataDir)).toEqual(before);
    expect((await put(server, token, path, file)).status).toBe(201);
  });
  it('a small body of declared length that goes quiet (a narinfo): 408 after body_idle_timeout too', async () => {
    const token = await server.ciToken({ repository: 'acme/slow', repository_id: '4' });
    const slow = openUpload(server.url, `/${'1'.repeat(32)}.narinfo`, token, 100);
    expect(await slow.continued).toBe(true);
    slow.send(Buffer.from('StorePath: '));
    const answer = await slow.answer;
    expect(answer.status).toBe(408);
    expect(answer.text).toBe('the request body sent nothing for 0.3 s (body_idle_timeout): abandoned\n');
    expect(answer.headers.connection).toBe('close');
  });
});
