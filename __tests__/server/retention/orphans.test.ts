/**
 * Orphans: NAR files uploaded without a narinfo are deleted once older than the grace window
 * (gc_grace, 1 h by default); younger ones, and NARs a narinfo uses, stay. Each deletion batch
 * leaves an audit row.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { serializeNarInfo } from '../../../src/nix/narinfo.js';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata-store.js';
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
