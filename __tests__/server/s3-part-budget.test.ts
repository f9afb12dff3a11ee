/**
 * The server-wide budget of multipart part buffers, on the real bucket (Ceph RGW): large uploads
 * at once wait for buffer space instead of allocating past it, every one of them completes byte
 * for byte, and a budget of a single part (one buffer, reused once its part is stored) still
 * lands concurrent uploads rather than deadlocking them.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { PartPool } from '../../src/server/storage/part-buffers.js';
import { MIN_PART_SIZE, S3BlobStore } from '../../src/server/storage/s3-blob-store.js';
import { bucketContents, freshBucket } from '../support/backends.js';

const MiB = 1024 ** 2;

/** A body of `bytes` in chunks of one reused buffer, as the upload verification yields it. */
async function* reusedChunks(bytes: Buffer, chunkSize = 256 * 1024): AsyncGenerator<Buffer> {
  const buffer = Buffer.alloc(chunkSize);
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    const n = bytes.copy(buffer, 0, offset, offset + chunkSize);
    yield buffer.subarray(0, n);
    buffer.fill(0xee);
  }
}

async function sha256Of(store: S3BlobStore, key: string): Promise<string> {
  const reader = await store.open(key);
  if (!reader) throw new Error(`${key} is not in the bucket`);
  const hash = createHash('sha256');
  await reader.writeTo(
    new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        hash.update(chunk);
        done();
      },
    }),
  );
  return hash.digest('hex');
}

/** The headers of every UploadPart as signed and sent. */
function signedHeaders(store: S3BlobStore): Record<string, string>[] {
  const sent: Record<string, string>[] = [];
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'UploadPartCommand')
        sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
      return next(args);
    },
    { step: 'deserialize', name: 'testSignedHeaders' },
  );
  return sent;
}

describe('part buffer budget', () => {
  let store: S3BlobStore | undefined;
  afterEach(() => store?.close());

  it.each([
    ['two parts for four uploads', 2],
    ['one part for three uploads (one buffer each, in turn)', 1],
  ])('%s: every upload completes, byte for byte, never over the budget', async (_name, parts) => {
    const uploads = parts === 2 ? 4 : 3;
    const location = await freshBucket();
    store = new S3BlobStore({ ...location, partSize: MIN_PART_SIZE, partBuffers: parts * MIN_PART_SIZE });
    const sent = signedHeaders(store);
    // Three and a half parts each: multipart, with a short last part.
    const bodies = Array.from({ length: uploads }, () => randomBytes(3 * MIN_PART_SIZE + MiB / 2));
    const outcomes = await Promise.all(
      bodies.map((body, i) => store!.put(`big${i}.nar`, reusedChunks(body))),
    );

    expect(outcomes).toEqual(bodies.map(() => 'created'));
    expect(store.partPool.peak).toBeGreaterThanOrEqual(MIN_PART_SIZE);
    expect(store.partPool.peak).toBeLessThanOrEqual(parts * MIN_PART_SIZE);
    expect(store.partPool.inUse).toBe(0);
    for (const [i, body] of bodies.entries())
      expect(await sha256Of(store, `big${i}.nar`)).toBe(createHash('sha256').update(body).digest('hex'));
    expect((await bucketContents(location)).uploads).toEqual([]);
    // Each part went with its CRC32, its bytes outside the signature (docs/operations.md).
    expect(sent.length).toBe(uploads * 4);
    for (const headers of sent) {
      expect(headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
      expect(headers['x-amz-checksum-crc32']).toMatch(/^[A-Za-z0-9+/]{6}==$/);
    }
  });

  it('a failed upload gives its buffers back, and small bodies never wait for the budget', async () => {
    const location = await freshBucket();
    store = new S3BlobStore({ ...location, partSize: MIN_PART_SIZE, partBuffers: MIN_PART_SIZE });
    async function* failing(): AsyncGenerator<Buffer> {
      yield* reusedChunks(randomBytes(2 * MIN_PART_SIZE));
      throw new Error('the NAR does not hash to its name');
    }
    await expect(store.put('bad.nar', failing())).rejects.toThrow('does not hash to its name');
    expect(store.partPool.inUse).toBe(0);

    // The whole budget taken elsewhere: a 100 KiB NAR still goes through.
    const held = store.partPool.tryTake()!;
    expect(await store.put('small.nar', reusedChunks(randomBytes(100 * 1024)))).toBe('created');
    store.partPool.give(held);
    expect((await bucketContents(location)).objects).toEqual(['small.nar']);
  });
});

describe('PartPool', () => {
  it('lends at most its limit, in order of asking, reusing what is given back', async () => {
    const pool = new PartPool(4, 8);
    const [a, b] = [pool.tryTake()!, pool.tryTake()!];
    expect(pool.tryTake()).toBeUndefined();
    const granted: Buffer[] = [];
    const first = pool.take().then((buffer) => granted.push(buffer));
    const second = pool.take().then((buffer) => granted.push(buffer));
    pool.give(a);
    // A buffer given back goes to the first waiter; nobody overtakes the second.
    await first;
    expect(pool.tryTake()).toBeUndefined();
    pool.give(b);
    await second;
    expect(granted).toEqual([a, b]);
    expect(granted[0]).toBe(a);
    expect([pool.inUse, pool.peak]).toEqual([8, 8]);
    expect(() => new PartPool(8, 4)).toThrow('must hold at least one part');
  });
});
