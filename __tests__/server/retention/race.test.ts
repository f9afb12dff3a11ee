/**
 * A push of a path whose NAR the collector is deleting at that very moment: the collector is
 * stopped between claiming the NAR file and deleting it, the push is started there, and the
 * collector then goes on. Whatever the interleaving, the push ends with the path served and its
 * NAR hashing to its FileHash; a fresh store substitutes it at the end. On files + SQLite and on
 * S3 (Ceph RGW) + PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Hash } from '../../../src/nix/hash.js';
import { addTinyPaths } from '../../support/nix.js';
import { sharedBackends } from '../../support/backends.js';
import { DAY, TestClock, nixCopy } from '../../support/retention.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  type NarUpload,
  type TestServer,
} from '../../support/server.js';

const BACKENDS: [string, () => Promise<string>][] = [
  ['files + SQLite', async () => ''],
  ['S3 + PostgreSQL', async () => (await sharedBackends()).yaml],
];

describe.each(BACKENDS)('a push racing the collector on %s', (_name, backendYaml) => {
  // In the future: NAR files are aged by their mtime too, which is real time.
  const clock = new TestClock(Date.now() + DAY);
  let server: TestServer;
  let token: string;
  /** Set by a test: what to do when the collector is about to delete a NAR file. */
  let atDeletion: ((key: string) => Promise<void>) | undefined;

  beforeAll(async () => {
    server = await startTestServer({
      clock: clock.now,
      yaml: `${await backendYaml()}retention: { max_age: 30d }\n`,
      beforeBlobDelete: async (key) => atDeletion?.(key),
    });
    token = await server.ciToken();
  });
  afterAll(async () => {
    await server?.close();
  });

  /** The path is served: its narinfo, and a NAR file that hashes to the narinfo's FileHash. */
  async function expectServed(upload: NarUpload): Promise<void> {
    const headers = { authorization: `Bearer ${token}` };
    const narinfo = await fetch(`${server.url}/${upload.hashPart}.narinfo`, { headers });
    const text = await narinfo.text();
    expect([narinfo.status, text]).toEqual([200, expect.stringContaining(upload.storePath)]);
    const url = /^URL: (.*)$/m.exec(text)?.[1] as string;
    const fileHash = /^FileHash: (.*)$/m.exec(text)?.[1] as string;
    const nar = await fetch(`${server.url}/${url}`, { headers });
    expect(nar.status).toBe(200);
    expect(Hash.of('sha256', Buffer.from(await nar.arrayBuffer())).toString()).toBe(fileHash);
  }

  /** Ages everything pushed so far past max_age and collects, running `push` while a NAR is deleted. */
  async function collectRacing(push: () => Promise<void>, delayMs: number): Promise<string[]> {
    clock.set(clock.time + 40 * DAY);
    let pushing: Promise<void> | undefined;
    const deleted: string[] = [];
    atDeletion = async (key) => {
      deleted.push(key);
      pushing ??= push();
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    };
    try {
      await server.collectGarbage();
    } finally {
      atDeletion = undefined;
    }
    await pushing;
    return deleted;
  }

  it('ends with the path served, every time (Nix-style uploads, 25 forced races)', async () => {
    const [path] = await addTinyPaths(1, 'race-raw');
    const upload = await narUploadFor(path as string);
    expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
    for (let round = 0; round < 25; round++) {
      const deleted = await collectRacing(async () => {
        const [nar, narinfo] = await pushRaw(server.url, token, upload);
        expect([nar, narinfo]).toEqual([201, 201]);
      }, round % 5);
      // The race was real: the collector deleted this path's NAR file while the push ran.
      expect(deleted).toContain(upload.narUrl.slice('nar/'.length));
      await expectServed(upload);
    }
  }, 60_000);

  it('ends with the path served when the claim is over a minute old at the deletion', async () => {
    // A claim lapses after a minute, and a push then reuses the file as left by a dead collector:
    // a delete that comes later (a slow store, a paused process, a long run) must not go ahead.
    const [path] = await addTinyPaths(1, 'race-late');
    const upload = await narUploadFor(path as string);
    expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
    clock.set(clock.time + 40 * DAY);
    const deleted: string[] = [];
    atDeletion = async (key) => {
      if (key !== upload.narUrl.slice('nar/'.length)) return;
      deleted.push(key);
      clock.set(clock.time + 90_000);
      expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
    };
    try {
      await server.collectGarbage();
    } finally {
      atDeletion = undefined;
    }
    expect(deleted).toContain(upload.narUrl.slice('nar/'.length));
    await expectServed(upload);
  }, 60_000);

  it('ends with the path served when nix copy is the pusher (HEAD, then upload)', async () => {
    const [path] = await addTinyPaths(1, 'race-nix');
    const upload = await narUploadFor(path as string);
    await nixCopy(server.url, token, [path as string]);
    for (let round = 0; round < 3; round++) {
      const deleted = await collectRacing(() => nixCopy(server.url, token, [path as string]), 30);
      expect(deleted.length).toBeGreaterThan(0);
      await expectServed(upload);
    }
    const { closure } = await substituteFresh(server, path as string, token);
    expect(closure).toEqual([path]);
  }, 60_000);
});
