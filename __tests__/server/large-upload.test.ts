/**
 * Uploads of several MiB, more than the buffers the server gathers an upload in: files of several
 * zstd frames whose frame edges fall inside those buffers, stored byte for byte; a file corrupt
 * past its first buffer, or naming another NAR, is refused and leaves nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hash } from '../../src/nix/hash.js';
import {
  rawRequest,
  startTestServer,
  storedState,
  type StoredState,
  type TestServer,
  zstdFile as zstd,
} from '../support/server.js';
import { regularFileNar } from '../support/nar.js';

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

/** A NAR of one 5 MiB file and a file of it in three zstd frames. */
async function multiFrameFile(): Promise<{ nar: Buffer; file: Buffer }> {
  const nar = regularFileNar(Buffer.concat([randomBytes(3 * MiB + 12345), Buffer.alloc(2 * MiB, 'x')]));
  const cuts = [0, Math.floor(1.5 * MiB), Math.floor(3.2 * MiB), nar.length];
  const frames = await Promise.all(cuts.slice(1).map((end, i) => zstd(nar.subarray(cuts[i], end))));
  return { nar, file: Buffer.concat(frames) };
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
    const answer = JSON.parse(res.text) as { url: string };
    expect(answer).toEqual({
      url: expect.stringMatching(/^nar\/[0-9a-z]{52}\.nar\.zst$/),
      compression: 'zstd',
      file_hash: Hash.of('sha256', file).toString(),
      file_size: file.length,
      nar_hash: narHash.toString(),
      nar_size: nar.length,
    });
    // Served only once a narinfo names it, so the stored file itself is compared.
    expect(readFileSync(join(server.dataDir, 'nars', answer.url.slice('nar/'.length))).equals(file)).toBe(
      true,
    );

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

    // A skippable frame between the frames is padding that would be stored and served.
    const skippable = Buffer.concat([
      Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]),
      Buffer.from('hello'),
    ]);
    const frames = await Promise.all([nar.subarray(0, MiB), nar.subarray(MiB)].map((part) => zstd(part)));
    const padded = await put(narHash, Buffer.concat([frames[0]!, skippable, frames[1]!]));
    expect(padded.status).toBe(400);
    expect(padded.text).toMatch(/^zstd skippable frame at byte \d+: padding is not accepted in a NAR file/);

    const other = Hash.of('sha256', 'another NAR');
    const mismatched = await put(other, file);
    expect(mismatched.status).toBe(400);
    expect(mismatched.text).toBe(
      `NAR hashes to ${narHash.toString()}, not to ${other.toString()} as its name says\n`,
    );
    expect(storedState(server.dataDir)).toEqual(before);
  });
});
