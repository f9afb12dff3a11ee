/**
 * Orphans: NAR files uploaded without a narinfo are deleted once older than the grace window
 * (gc_grace, 1 h by default); younger ones, and NARs a narinfo uses, stay. Each deletion batch
 * leaves an audit row.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CreateMultipartUploadCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { serializeNarInfo } from '../../../src/nix/narinfo.js';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata-store.js';
import { createS3Client } from '../../../src/server/storage/s3-client.js';
import { bucketContents, sharedBackends } from '../../support/backends.js';
import { addTinyPaths } from '../../support/nix.js';
import { DAY, TestClock } from '../../support/retention.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../../support/server.js';

// In the future: NAR files are aged by their mtime too, which is real time.
const clock = new TestClock(Date.now() + DAY);
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ clock: clock.now });
});
afterAll(async () => {
  await server?.close();
});

async function uploadNarOnly(token: string, narUrl: string, nar: Buffer): Promise<number> {
  const res = await fetch(`${server.url}/${narUrl}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
    body: new Uint8Array(nar),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('orphan NAR files', () => {
  it('are deleted past the grace window, younger ones and used ones stay', async () => {
    const token = await server.ciToken();
    const [oldPath, youngPath, keptPath] = await addTinyPaths(3, 'orphan');
    const [old, young, kept] = await Promise.all(
      [oldPath, youngPath, keptPath].map((path) => narUploadFor(path as string)),
    );
    const start = clock.time;
    expect(await uploadNarOnly(token, old!.narUrl, old!.nar)).toBe(201);
    expect(await pushRaw(server.url, token, kept!)).toEqual([201, 201]);
    clock.set(start + 61 * 60_000);
    expect(await uploadNarOnly(token, young!.narUrl, young!.nar)).toBe(201);

    const report = await server.collectGarbage();
    const files = readdirSync(join(server.dataDir, 'nars')).sort();
    const key = (url: string) => url.slice('nar/'.length);
    expect(files).toEqual([key(young!.narUrl), key(kept!.narUrl)].sort());
    expect(report.nars).toEqual([{ key: key(old!.narUrl), bytes: old!.nar.length, reason: 'orphan' }]);

    const meta = new SqliteMetadataStore(join(server.dataDir, 'sluice.db'));
    try {
      expect(await meta.listDeletions({})).toEqual([
        {
          time: new Date(clock.time),
          slice: null,
          reason: 'orphan',
          items: [key(old!.narUrl)],
          bytes: old!.nar.length,
        },
      ]);
    } finally {
      await meta.close();
    }

    // Once the young one is past the window too, it goes; the used one stays.
    clock.set(clock.time + 61 * 60_000);
    await server.collectGarbage();
    expect(readdirSync(join(server.dataDir, 'nars'))).toEqual([key(kept!.narUrl)]);
    // The upload slice no longer claims it: a narinfo for it now asks for the NAR first.
    const res = await fetch(`${server.url}/${young!.hashPart}.narinfo`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: serializeNarInfo(young!.narinfo),
    });
    expect([res.status, await res.text()]).toEqual([400, expect.stringContaining('upload the NAR first')]);
  });
});

describe('a bucket prefix shared with other objects', () => {
  it('loses only orphan NAR files to the collector: other objects and uploads stay', async () => {
    const backends = await sharedBackends();
    const s3 = await startTestServer({ clock: clock.now, yaml: backends.yaml });
    const client = createS3Client(backends.bucket);
    try {
      const token = await s3.ciToken();
      const [path] = await addTinyPaths(1, 'orphan-s3');
      const orphan = await narUploadFor(path as string);
      const res = await fetch(`${s3.url}/${orphan.narUrl}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}` },
        body: new Uint8Array(orphan.nar),
      });
      expect(res.status).toBe(201);
      // Another tool's objects and its unfinished upload, under the same prefix (`cache/`).
      const { bucket, prefix } = backends.bucket;
      const foreign = ['index.html', 'backup.2026.tar', 'nix-cache-info'].map((name) => prefix + name);
      for (const Key of foreign)
        await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'not a nar' }));
      await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}dump.sql` }));

      clock.set(clock.time + 2 * DAY);
      const report = await s3.collectGarbage();
      expect(report.nars.map((nar) => nar.key)).toEqual([orphan.narUrl.slice('nar/'.length)]);
      expect(report.abortedUploads).toBe(0);
      const left = await bucketContents(backends.bucket);
      expect(left.objects.sort()).toEqual([...foreign].sort());
      expect(left.uploads).toEqual([`${prefix}dump.sql`]);
    } finally {
      client.destroy();
      await s3.close();
    }
  }, 60_000);
});
