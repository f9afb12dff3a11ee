/**
 * The collector's storage contract, on every implementation: RetentionStore on SQLite and on
 * PostgreSQL (conditional deletes, NAR claims against pushes, the lease, pins, paging), and the
 * BlobStore's listing and abort of unfinished uploads on files and on S3 (Ceph RGW). On
 * PostgreSQL the races run between two stores on one database, as between two replicas.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Readable } from 'node:stream';
import type { BlobStore } from '../../src/server/storage/blob-store.js';
import type { MetadataStore } from '../../src/server/storage/metadata-store.js';
import { PgMetadataStore } from '../../src/server/storage/pg-metadata-store.js';
import { narKeysInUse } from '../../src/server/retention/nar-keys.js';
import { Pacer } from '../../src/server/retention/pacer.js';
import { blobBackends, freshDatabase, type BlobBackend } from '../support/backends.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const T = Date.UTC(2026, 5, 1);
const MINUTE = 60_000;

/** Two handles on one database: a replica each (SQLite: two connections to one file). */
type Pair = [MetadataStore, MetadataStore];
const backends: [string, () => Promise<Pair>][] = [
  [
    'SQLite',
    async () => {
      const path = join(mkdtempSync(join(tmpdir(), 'sluice-ret-')), 'sluice.db');
      return [new SqliteMetadataStore(path), new SqliteMetadataStore(path)];
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshDatabase();
      return [await PgMetadataStore.open(url), await PgMetadataStore.open(url)];
    },
  ],
];

const hash = (i: number) =>
  i
    .toString()
    .padStart(32, '0')
    .replace(/[eotu]/g, '0');
const record = (slice: string, i: number, createdAt: number, narKey = `k${i}.nar`) => ({
  slice,
  hashPart: hash(i),
  storePath: `/nix/store/${hash(i)}-p${i}`,
  narKey,
  narinfo: `StorePath: /nix/store/${hash(i)}-p${i}\nFileSize: ${i}\n`,
  createdAt: new Date(createdAt),
});
const audit = (slice: string) => ({
  time: new Date(T),
  slice,
  storePath: '/nix/store/p',
  narSize: 1,
  fileSize: 1,
});
const deletion = (slice: string | null, items: string[]) => ({
  time: new Date(T),
  slice,
  reason: 'age',
  items,
  bytes: items.length,
});

describe.each(backends)('RetentionStore on %s', (_name, open) => {
  let meta: MetadataStore;
  let other: MetadataStore;
  beforeEach(async () => {
    [meta, other] = await open();
  });
  afterEach(async () => {
    await meta.close();
    await other.close();
  });

  it('lists a slice page by page in hash-part order, with access times', async () => {
    for (let i = 0; i < 7; i++) await meta.putNarInfo(record('s', i, T), audit('s'));
    await meta.putNarInfo(record('t', 9, T), audit('t'));
    expect(await meta.listSlices()).toEqual(['s', 't']);
    const first = await meta.listNarInfos('s', '', 3);
    const second = await meta.listNarInfos('s', first[2]!.hashPart, 3);
    const third = await meta.listNarInfos('s', second[2]!.hashPart, 3);
    expect([...first, ...second, ...third].map((row) => row.hashPart)).toEqual(
      [0, 1, 2, 3, 4, 5, 6].map(hash),
    );
    expect(first[0]).toMatchObject({ narKey: 'k0.nar', createdAt: new Date(T), lastAccessedAt: new Date(T) });
    // A touch moves the access time forward only, and counts the rows that exist.
    expect(
      await meta.touchNarInfos(
        [
          { slice: 's', hashPart: hash(1) },
          { slice: 's', hashPart: hash(99) },
        ],
        new Date(T + 5),
      ),
    ).toBe(1);
    expect(await meta.touchNarInfos([{ slice: 's', hashPart: hash(1) }], new Date(T + 2))).toBe(1);
    expect((await meta.listNarInfos('s', hash(0), 1))[0]!.lastAccessedAt).toEqual(new Date(T + 5));
    expect((await meta.findNarInfos([hash(1)], () => true))[0]!.lastAccessedAt).toEqual(new Date(T + 5));
  });

  it('deletes a batch only if none of it was used since the cut-off, with its audit row', async () => {
    for (let i = 0; i < 3; i++) await meta.putNarInfo(record('s', i, T), audit('s'));
    await other.touchNarInfos([{ slice: 's', hashPart: hash(2) }], new Date(T + 10 * MINUTE));
    const cut = new Date(T + 5 * MINUTE);
    expect(await meta.deleteNarInfos('s', [hash(0), hash(2)], cut, deletion('s', ['p0', 'p2']))).toBe(false);
    expect((await meta.listNarInfos('s', '', 10)).length).toBe(3);
    expect(await meta.deleteNarInfos('s', [hash(0), hash(1)], cut, deletion('s', ['p0', 'p1']))).toBe(true);
    expect((await meta.listNarInfos('s', '', 10)).map((row) => row.hashPart)).toEqual([hash(2)]);
    expect(await other.listDeletions({})).toEqual([deletion('s', ['p0', 'p1'])]);
    // A read of a deleted row finds nothing to touch: the reader looks again.
    expect(await other.touchNarInfos([{ slice: 's', hashPart: hash(0) }], new Date(T + 11 * MINUTE))).toBe(0);
  });

  it('a read racing a batch delete: either the read sees nothing or the batch is refused', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 40; round++) {
      const slice = `race${round}`;
      await meta.putNarInfo(record(slice, 1, T), audit(slice));
      // One goes a little later than the other, by turns, to land inside the other's transaction.
      const later = <T>(first: boolean, run: () => Promise<T>) =>
        new Promise((resolve) => setTimeout(resolve, first ? 0 : (round % 8) / 2)).then(run);
      const [deleted, touched] = await Promise.all([
        later(round % 2 === 0, () =>
          meta.deleteNarInfos(slice, [hash(1)], new Date(T + 5 * MINUTE), deletion(slice, ['p1'])),
        ),
        later(round % 2 === 1, () =>
          other.touchNarInfos([{ slice, hashPart: hash(1) }], new Date(T + 10 * MINUTE)),
        ),
      ]);
      outcomes.add(String(deleted));
      const left = (await meta.listNarInfos(slice, '', 10)).length;
      expect([touched, deleted, left]).toEqual(touched === 1 ? [1, false, 1] : [0, true, 0]);
    }
    // Both orders happened: the race was run, not avoided.
    expect(outcomes).toEqual(new Set(['true', 'false']));
  });

  it('lists the NAR keys narinfos use, each once, and the keys pushes marked, page by page in key order', async () => {
    // 25 narinfos over 21 keys (some NARs in two slices), read 4 at a time.
    const key = (i: number) => `${String(i % 21).padStart(2, '0')}.nar`;
    const all = Array.from({ length: 21 }, (_, i) => key(i));
    for (let i = 0; i < 25; i++)
      await meta.putNarInfo(record(i < 15 ? 'a' : 'b', i, T - 2 * MINUTE, key(i)), audit('a'));
    expect(await meta.listReferencedNarKeys('', 4)).toEqual(all.slice(0, 4));
    expect(await meta.listReferencedNarKeys('03.nar', 4)).toEqual(all.slice(4, 8));
    expect(await meta.listReferencedNarKeys('19.nar', 4)).toEqual(['20.nar']);
    // Marks by pushes, of keys no narinfo uses yet: one page lists each with its last mark.
    const mark = (i: number) => `m${String(i).padStart(2, '0')}.nar`;
    for (let i = 0; i < 10; i++) await meta.touchNar(mark(i), new Date(T + (i % 3 === 0 ? MINUTE : -MINUTE)));
    expect(await meta.listNarKeyUses('m03.nar', 2)).toEqual([
      { key: 'm04.nar', usedAt: new Date(T - MINUTE) },
      { key: 'm05.nar', usedAt: new Date(T - MINUTE) },
    ]);
    const inUse = await narKeysInUse(meta, new Date(T), new Pacer(), 4);
    expect(inUse.referenced).toEqual(new Set(all));
    expect(inUse.touched).toEqual(new Set(['m00.nar', 'm03.nar', 'm06.nar', 'm09.nar']));
  });

  it('claims a NAR no narinfo uses and no push touched; pushes wait until the claim is finished', async () => {
    await meta.recordUpload('s', {
      key: 'a.nar',
      compression: 'none',
      fileHash: 'sha256:x',
      fileSize: 1,
      narHash: 'sha256:y',
      narSize: 1,
    });
    const cut = new Date(T);
    expect(await meta.touchNar('a.nar', new Date(T - MINUTE))).toBe(true);
    expect(await meta.touchNar('b.nar', new Date(T + MINUTE))).toBe(true);
    expect(await narKeysInUse(meta, cut, new Pacer())).toEqual({
      referenced: new Set(),
      touched: new Set(['b.nar']),
    });
    // Touched after the cut-off: not claimed.
    expect(await meta.claimNarDeletion('b.nar', cut, new Date(T + 2 * MINUTE))).toBe(false);
    await meta.putNarInfo(record('s', 1, T, 'c.nar'), audit('s'));
    expect(await meta.claimNarDeletion('c.nar', new Date(T + MINUTE), new Date(T + 2 * MINUTE))).toBe(false);
    // Claimed: the slice no longer holds the upload, pushes and narinfos of it are told no.
    const at = new Date(T + 2 * MINUTE);
    expect(await meta.claimNarDeletion('a.nar', cut, at)).toBe(true);
    expect(await other.uploadedNar('s', 'a.nar')).toBeNull();
    expect(await other.touchNar('a.nar', new Date(+at + 1))).toBe(false);
    expect(await other.putNarInfo(record('s', 2, +at + 1, 'a.nar'), audit('s'))).toBe('nar_missing');
    expect(await other.listNarInfos('s', hash(1), 10)).toEqual([]);
    await meta.finishNarDeletion(['a.nar'], deletion(null, ['a.nar']));
    expect(await other.touchNar('a.nar', new Date(+at + 2))).toBe(true);
    expect(await other.putNarInfo(record('s', 2, +at + 3, 'a.nar'), audit('s'))).toBe('created');
    // A claim a dead collector left is abandoned after a minute.
    expect(await meta.claimNarDeletion('d.nar', cut, at)).toBe(true);
    expect(await other.touchNar('d.nar', new Date(+at + 30_000))).toBe(false);
    expect(await other.touchNar('d.nar', new Date(+at + 61_000))).toBe(true);
  });

  it('a narinfo racing the claim of its NAR: never a narinfo whose NAR is being deleted', async () => {
    const outcomes = new Set<boolean>();
    for (let round = 0; round < 40; round++) {
      const key = `r${round}.nar`;
      const later = <T>(first: boolean, run: () => Promise<T>) =>
        new Promise((resolve) => setTimeout(resolve, first ? 0 : (round % 8) / 2)).then(run);
      const [claimed, stored] = await Promise.all([
        later(round % 2 === 0, () => meta.claimNarDeletion(key, new Date(T), new Date(T + MINUTE))),
        later(round % 2 === 1, () => other.putNarInfo(record('s', round, T + MINUTE, key), audit('s'))),
      ]);
      outcomes.add(claimed);
      expect([claimed, stored]).toEqual(claimed ? [true, 'nar_missing'] : [false, 'created']);
    }
    expect(outcomes).toEqual(new Set([true, false]));
  });

  it('one collector at a time: the lease is exclusive until released or expired', async () => {
    const until = new Date(T + 15 * MINUTE);
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? meta : other).acquireLease('gc', `h${i}`, until, new Date(T)),
      ),
    );
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    const holder = `h${outcomes.indexOf(true)}`;
    expect(await meta.acquireLease('gc', holder, new Date(T + 20 * MINUTE), new Date(T + MINUTE))).toBe(true);
    expect(await other.acquireLease('gc', 'late', until, new Date(T + 16 * MINUTE))).toBe(false);
    expect(await other.acquireLease('gc', 'late', new Date(T + 40 * MINUTE), new Date(T + 21 * MINUTE))).toBe(
      true,
    );
    await meta.releaseLease('gc', holder);
    expect(await meta.acquireLease('gc', 'third', until, new Date(T + 22 * MINUTE))).toBe(false);
    await other.releaseLease('gc', 'late');
    expect(await meta.acquireLease('gc', 'third', new Date(T + 60 * MINUTE), new Date(T + 22 * MINUTE))).toBe(
      true,
    );
  });

  it('keeps pins by slice and name, adding paths to a pin of the same name', async () => {
    const pin = {
      slice: 's',
      name: 'v1',
      storePaths: ['/nix/store/b-x'],
      createdAt: new Date(T),
      expiresAt: null,
    };
    await meta.putPin(pin);
    await other.putPin({ ...pin, storePaths: ['/nix/store/a-y'], expiresAt: new Date(T + MINUTE) });
    await meta.putPin({ ...pin, slice: 't' });
    expect(await other.listPins('s')).toEqual([
      { ...pin, storePaths: ['/nix/store/a-y', '/nix/store/b-x'], expiresAt: new Date(T + MINUTE) },
    ]);
    expect((await meta.listPins()).map((p) => p.slice)).toEqual(['s', 't']);
    expect([await meta.deletePin('s', 'v1'), await meta.deletePin('s', 'v1')]).toEqual([true, false]);
    expect((await other.listPins()).map((p) => p.slice)).toEqual(['t']);
  });
});

/** A NAR file's name (what the stores list): 52 nix32 characters of `c`. */
const nar = (c: string, ext = ''): string => `${c.repeat(52)}.nar${ext}`;

async function put(store: BlobStore, key: string, text: string): Promise<void> {
  expect(await store.put(key, Readable.from([Buffer.from(text)]))).toBe('created');
}

describe.each(blobBackends)('BlobStore listing on %s', (_name, open) => {
  let backend: BlobBackend;
  let store: BlobStore;
  beforeEach(async () => {
    backend = await open();
    store = backend.store;
  });
  afterEach(() => backend.close());

  it('lists every complete object with its size and time, and nothing unfinished', async () => {
    const before = Date.now() - 5000;
    await put(store, nar('a'), 'aaa');
    await put(store, nar('b', '.zst'), 'b');
    // An upload in progress: its body waits until the listing is done.
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const pending = store.put(
      nar('c'),
      (async function* () {
        yield Buffer.alloc(6 * 1024 ** 2, 1);
        await gate;
      })(),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const listed = [];
    for await (const blob of store.list()) listed.push(blob);
    // An upload in progress is not "unfinished" to the abort, whatever the cut-off.
    expect(await store.abortIncompleteUploads(new Date(Date.now() + 60_000))).toBe(0);
    finish();
    expect(await pending).toBe('created');
    expect(listed.map((blob) => [blob.key, blob.size]).sort()).toEqual([
      [nar('a'), 3],
      [nar('b', '.zst'), 1],
    ]);
    for (const blob of listed) expect(+blob.modifiedAt).toBeGreaterThan(before);
    const unskipped = [];
    for await (const blob of store.list((key) => key !== nar('b', '.zst'))) unskipped.push(blob.key);
    expect(unskipped).toEqual([nar('b', '.zst')]);
  });

  it('aborts uploads left unfinished before the cut-off, and only those', async () => {
    await put(store, nar('k'), 'x');
    await backend.abandonUpload(nar('g'));
    expect(await store.abortIncompleteUploads(new Date(Date.now() - 60_000))).toBe(0);
    expect((await backend.leftovers()).some((item) => item.includes(nar('g')))).toBe(true);
    expect(await store.abortIncompleteUploads(new Date(Date.now() + 60_000))).toBe(1);
    expect((await backend.leftovers()).map((item) => item.replace(/^nars\//, ''))).toEqual([nar('k')]);
  });
});
