/**
 * References are the uploader's word: a writer can upload narinfos that refer to each other, which
 * no real store path can. Such a cycle (and what it refers to) must age out like any other paths,
 * not be kept for ever past `max_age`, `max_size` and a pull request's TTL, as pins are.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { addTinyPaths } from '../../support/nix.js';
import { DAY, TestClock, readNarInfo } from '../../support/retention.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../../support/server.js';

// In the future: NAR files are aged by their mtime too, which is real time.
const clock = new TestClock(Date.now() + DAY);
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ clock: clock.now, yaml: 'retention: { max_age: 30d }\n' });
});
afterAll(async () => {
  await server?.close();
});

const baseName = (path: string) => path.slice('/nix/store/'.length);

describe('narinfos whose references form a cycle', () => {
  it('go by max_age like any path, with the paths they refer to', async () => {
    const token = await server.ciToken();
    const [a, b, c] = (await addTinyPaths(3, 'cycle')) as [string, string, string];
    const [upA, upB, upC] = await Promise.all([a, b, c].map(narUploadFor));
    // a → b → a, and b → c: c is a plain path the cycle refers to.
    upA!.narinfo.references = [baseName(b)];
    upB!.narinfo.references = [baseName(a), baseName(c)];
    for (const upload of [upC!, upB!, upA!])
      expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);

    // Within max_age, all stay; once it has passed unread, all go.
    await server.collectGarbage();
    for (const path of [a, b, c]) expect(await readNarInfo(server.url, token, path)).toBe(200);
    clock.set(clock.time + 31 * DAY);
    const report = await server.collectGarbage();
    const removed = report.slices.find((slice) => slice.slice === 'acme/app')?.removedPaths ?? [];
    expect(removed.map((entry) => [entry.storePath, entry.reason]).sort()).toEqual(
      [a, b, c].map((path) => [path, 'age']).sort(),
    );
    for (const path of [a, b, c]) expect(await readNarInfo(server.url, token, path)).toBe(404);
  }, 120_000);
});
