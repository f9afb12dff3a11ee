/**
 * The presigned GET URLs of NAR links and redirects, made without the SDK's per-URL middleware run
 * (src/server/storage/s3-presigner.ts), checked by the real Ceph RGW: they read exactly their
 * object, under a prefix that needs escaping, stop working when they expire, and a URL edited to
 * name another object is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { MIN_PART_SIZE, S3BlobStore } from '../../src/server/storage/s3-blob-store.js';
import { freshBucket } from '../support/backends.js';

async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

describe('presigned GET URLs on Ceph RGW', () => {
  let store: S3BlobStore;
  const bodies = { a: randomBytes(70_000), b: randomBytes(1_000) };
  const keys = { a: `${'a'.repeat(52)}.nar.zst`, b: `${'b'.repeat(52)}.nar.zst` };

  beforeAll(async () => {
    // Characters SigV4 wants escaped in a path: space, plus, quotes and parentheses, non-ASCII.
    const location = await freshBucket("odd dir+(1)!*'é/");
    store = new S3BlobStore({ ...location, partSize: MIN_PART_SIZE });
    expect(await store.put(keys.a, once(bodies.a))).toBe('created');
    expect(await store.put(keys.b, once(bodies.b))).toBe('created');
  });
  afterAll(() => store?.close());

  it('reads its object without credentials, byte for byte, as the SDK’s own URL does', async () => {
    const url = await store.presignedGetUrl(keys.a, 300);
    const answer = await fetch(url);
    expect(answer.status).toBe(200);
    expect(Buffer.from(await answer.arrayBuffer()).equals(bodies.a)).toBe(true);
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('300');

    const sdk = await getSignedUrl(
      store.client,
      new GetObjectCommand({ Bucket: store.options.bucket, Key: store.objectKey(keys.a) }),
      { expiresIn: 300 },
    );
    expect(new URL(url).pathname).toBe(new URL(sdk).pathname);
    expect(Buffer.from(await (await fetch(sdk)).arrayBuffer()).equals(bodies.a)).toBe(true);
  });

  it('a URL edited to name another object is refused', async () => {
    const url = await store.presignedGetUrl(keys.a, 300);
    const edited = url.replace(keys.a, keys.b);
    expect(edited).not.toBe(url);
    expect((await fetch(edited)).status).toBe(403);
  });

  it('stops working once it expires', async () => {
    const url = await store.presignedGetUrl(keys.b, 1);
    expect((await fetch(url)).status).toBe(200);
    await sleep(2_100);
    expect((await fetch(url)).status).toBe(403);
  });
});
