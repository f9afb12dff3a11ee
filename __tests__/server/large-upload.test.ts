/**
 * Uploads of several MiB, more than the buffers the server gathers an upload in: files of several
 * zstd frames (and a skippable one) whose frame edges fall inside those buffers, stored byte for
 * byte; a file corrupt past its first buffer, or naming another NAR, is refused and leaves nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import {
  rawRequest,
  startTestServer,
  storedState,
  type StoredState,
  type TestServer,
} from '../support/server.js';

const MiB = 1024 * 1024;
let server: TestServer;
let writer: string;

beforeAll(async () => {
  server = await startTestServer();
  writer = await server.ciToken();
});
afterAll(async () => {
  await server?.close();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function zstd(bytes: Buffer): Promise<Buffer> {
  return buffer(Readable.from([bytes]).pipe(createCompressor('zstd')));
}

/** NAR bytes (only their hash matters to the route) and a file of them in three frames and a skippable one. */
async function multiFrameFile(): Promise<{ nar: Buffer; file: Buffer }> {
  const nar = Buffer.concat([randomBytes(3 * MiB + 12345), Buffer.alloc(2 * MiB, 'x')]);
  const cuts = [0, Math.floor(1.5 * MiB), Math.floor(3.2 * MiB), nar.length];
  const frames = await Promise.all(cuts.slice(1).map((end, i) => zstd(nar.subarray(cuts[i], end))));
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('hello')]);
  return { nar, file: Buffer.concat([frames[0]!, skippable, frames[1]!, frames[2]!]) };
}

const put = (narHash: Hash, body: Buffer, extension = '.zst') =>
  rawRequest(server.url, 'PUT', `/_api/v1/nar/${narHash.nix32}.nar${extension}`, {
    headers: auth(writer),
    body,
  });

describe('uploads larger than the upload buffers', () => {
  let before: StoredState;
  beforeEach(() => {
    before = storedState(server.dataDir);
  });

  it('a file of several zstd frames is verified across buffers and stored byte for byte', async () => {
    const { nar, file } = await multiFrameFile();
    const narHash = Hash.of('sha256', nar);
    const res = await put(narHash, file);
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text)).toEqual({
      url: `nar/${narHash.nix32}.nar.zst`,
      compression: 'zstd',
      file_hash: Hash.of('sha256', file).toString(),
      file_size: file.length,
      nar_hash: narHash.toString(),
      nar_size: nar.length,
    });
    // Served only once a narinfo names it, so the stored file itself is compared.
    expect(readFileSync(join(server.dataDir, 'nars', `${narHash.nix32}.nar.zst`)).equals(file)).toBe(true);

    // Uncompressed, too.
    const plain = await put(narHash, nar, '');
    expect(plain.status).toBe(201);
    expect(JSON.parse(plain.text)).toMatchObject({ file_size: nar.length, nar_size: nar.length });
  });

  it('corruption past the first buffer, or another NAR: 400, nothing stored', async () => {
    const { nar, file } = await multiFrameFile();
    const narHash = Hash.of('sha256', nar);
    const corrupt = Buffer.from(file);
    corrupt[Math.floor(2.5 * MiB)]! ^= 0xff;
    const damaged = await put(narHash, corrupt);
    expect(damaged.status).toBe(400);
    expect(damaged.text).toContain('NAR file does not decompress as zstd');

    const other = Hash.of('sha256', 'another NAR');
    const mismatched = await put(other, file);
    expect(mismatched.status).toBe(400);
    expect(mismatched.text).toBe(
      `NAR hashes to ${narHash.toString()}, not to ${other.toString()} as its name says\n`,
    );
    expect(storedState(server.dataDir)).toEqual(before);
  });
});
