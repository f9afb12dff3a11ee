/** The storage backends on real files: put-if-absent, atomic visibility, ranges, slice-filtered lookups. */
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { FsBlobStore } from '../../src/server/storage/fs-blob-store.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'sluice-storage-'));

/** Everything a BlobReader writes, copied as it arrives (its buffers are reused). */
async function read(store: FsBlobStore, key: string, range?: { start: number; end: number }) {
  const reader = await store.open(key, range);
  if (!reader) return null;
  const chunks: Buffer[] = [];
  let reported = 0;
  const sink = new Writable({
    // Like a socket: the bytes are taken (copied here) on a later turn, and only then the
    // callback runs, so a buffer reused before its callback would show as wrong bytes.
    write: (chunk: Buffer, _encoding, done) =>
      setImmediate(() => {
        chunks.push(Buffer.from(chunk));
        done();
      }),
  });
  await reader.writeTo(sink, (bytes) => (reported += bytes));
  const bytes = Buffer.concat(chunks);
  expect(reported).toBe(bytes.length);
  return bytes;
}

describe('FsBlobStore', () => {
  it('stores once, reads whole or by range, heads and deletes', async () => {
    const dir = tempDir();
    const store = await FsBlobStore.open(dir);
    expect(await store.put('abc.nar', Readable.from([Buffer.from('hello '), Buffer.from('world')]))).toBe(
      'created',
    );
    expect(await store.put('abc.nar', Readable.from([Buffer.from('other')]))).toBe('exists');
    expect((await read(store, 'abc.nar'))?.toString()).toBe('hello world');
    expect((await read(store, 'abc.nar', { start: 6, end: 10 }))?.toString()).toBe('world');
    expect(await store.head('abc.nar')).toEqual({ size: 11 });
    await store.delete('abc.nar');
    expect([await store.head('abc.nar'), await read(store, 'abc.nar')]).toEqual([null, null]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reads files of many read buffers, whole and by ranges across buffer edges, byte for byte', async () => {
    const store = await FsBlobStore.open(tempDir());
    const bytes = randomBytes(5 * 256 * 1024 + 123);
    await store.put('big.nar', Readable.from([bytes]));
    expect((await read(store, 'big.nar'))!.equals(bytes)).toBe(true);
    for (const [start, end] of [
      [0, 256 * 1024],
      [256 * 1024 - 1, 3 * 256 * 1024 + 5],
      [bytes.length - 1, bytes.length - 1],
    ] as const) {
      expect((await read(store, 'big.nar', { start, end }))!.equals(bytes.subarray(start, end + 1))).toBe(
        true,
      );
    }
  });

  it('a destination that closes midway fails the read instead of leaving it waiting', async () => {
    const store = await FsBlobStore.open(tempDir());
    await store.put('big.nar', Readable.from([randomBytes(4 * 256 * 1024)]));
    let writes = 0;
    const sink = new Writable({
      write: (_chunk, _encoding, done) => {
        // The second chunk never gets through: the peer goes away instead.
        if (++writes === 2) sink.destroy();
        else done();
      },
    });
    await expect((await store.open('big.nar'))!.writeTo(sink)).rejects.toThrow(
      'the destination closed before taking all the bytes',
    );
    expect(writes).toBe(2);
  });

  it('a body that fails leaves nothing, not even a temp file', async () => {
    const dir = tempDir();
    const store = await FsBlobStore.open(dir);
    const failing = new Readable({ read() {} });
    failing.push(Buffer.from('partial'));
    setImmediate(() => failing.destroy(new Error('check failed')));
    await expect(store.put('abc.nar', failing)).rejects.toThrow('check failed');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses keys that are not plain file names', async () => {
    const store = await FsBlobStore.open(tempDir());
    for (const key of ['../x', 'a/b', '.hidden', 'A.nar', '..']) {
      await expect(store.head(key)).rejects.toThrow(`invalid blob key '${key}'`);
    }
  });
});

describe('SqliteMetadataStore', () => {
  const facts = {
    key: 'k.nar',
    compression: 'none' as const,
    fileHash: 'sha256:f',
    fileSize: 3,
    narHash: 'sha256:x',
    narSize: 3,
  };
  const record = (slice: string, createdAt: number) => ({
    slice,
    hashPart: 'h'.repeat(32),
    storePath: `/nix/store/${'h'.repeat(32)}-x`,
    narKey: 'k.nar',
    narinfo: `StorePath: in ${slice}\n`,
    createdAt: new Date(createdAt),
  });
  const audit = (slice: string) => ({
    time: new Date(),
    slice,
    storePath: '/nix/store/p',
    narSize: 3,
    fileSize: 3,
  });

  it('answers lookups only from the slices the filter admits', async () => {
    const meta = new SqliteMetadataStore(join(tempDir(), 'sluice.db'));
    await meta.recordUpload('a', facts);
    expect(await meta.uploadedNar('a', 'k.nar')).toEqual(facts);
    expect(await meta.uploadedNar('b', 'k.nar')).toBeNull();
    expect(await meta.putNarInfo(record('b', 2), audit('b'))).toBe('created');
    expect(await meta.putNarInfo(record('a', 1), audit('a'))).toBe('created');
    expect(await meta.putNarInfo(record('a', 3), audit('a'))).toBe('exists');
    // Every readable row, with its slice's binding (none here); which one answers is union-read's choice.
    const found = async (readable: (slice: string) => boolean, hashParts = ['h'.repeat(32)]) =>
      (await meta.findNarInfos(hashParts, readable))
        .map((row) => [row.hashPart, row.slice, row.narinfo, row.owner])
        .sort();
    expect(await found((s) => s === 'b')).toEqual([['h'.repeat(32), 'b', 'StorePath: in b\n', null]]);
    expect(await found(() => true, ['h'.repeat(32), 'x'.repeat(32)])).toEqual([
      ['h'.repeat(32), 'a', 'StorePath: in a\n', null],
      ['h'.repeat(32), 'b', 'StorePath: in b\n', null],
    ]);
    expect(await found((s) => s === 'c')).toEqual([]);
    await meta.bindSlice('b', { issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' });
    const owners = (await meta.findNarInfos(['h'.repeat(32)], () => true)).map((row) => row.owner);
    expect(owners).toContainEqual({ issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' });
    expect(
      await meta.isNarReadable('k.nar', (slice, owner) => slice === 'b' && owner?.repositoryId === '7'),
    ).toBe(true);
    expect(await meta.isNarReadable('k.nar', (s) => s === 'c')).toBe(false);
    expect(await meta.isNarReadable('k.nar', (s) => s === 'b')).toBe(true);
    expect((await meta.listAudit({})).map((e) => e.slice)).toEqual(['b', 'a']);
    expect((await meta.listAudit({ slice: 'a' })).length).toBe(1);
    await meta.close();
  });

  it('opens a database made before uploads recorded their FileHash, reading it from the key', async () => {
    const path = join(tempDir(), 'sluice.db');
    const fileHash = '1'.repeat(52);
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE slice_nars (
      slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_size INTEGER NOT NULL,
      nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (slice, key))`);
    old
      .prepare('INSERT INTO slice_nars VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run('a', `${fileHash}.nar.zst`, 'zstd', 7, 'sha256:x', 9, 0);
    old.close();
    const meta = new SqliteMetadataStore(path);
    expect(await meta.uploadedNar('a', `${fileHash}.nar.zst`)).toEqual({
      key: `${fileHash}.nar.zst`,
      compression: 'zstd',
      fileHash: `sha256:${fileHash}`,
      fileSize: 7,
      narHash: 'sha256:x',
      narSize: 9,
    });
    await meta.recordUpload('a', facts);
    expect(await meta.uploadedNar('a', 'k.nar')).toEqual(facts);
    await meta.close();
  });

  it("opens a database whose slice bindings predate issuers: they were the default issuer's", async () => {
    const path = join(tempDir(), 'sluice.db');
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE slices (name TEXT PRIMARY KEY, repository_id TEXT NOT NULL,
      repository_owner_id TEXT NOT NULL, created_at INTEGER NOT NULL)`);
    old.prepare('INSERT INTO slices VALUES (?, ?, ?, ?)').run('acme/app', '1', '9', 0);
    old.close();
    const meta = new SqliteMetadataStore(path);
    expect(await meta.sliceOwner('acme/app')).toEqual({
      issuer: 'github',
      repositoryId: '1',
      repositoryOwnerId: '9',
    });
    await meta.close();
  });

  it('binds a slice to the first owner', async () => {
    const meta = new SqliteMetadataStore(join(tempDir(), 'sluice.db'));
    const first = { issuer: 'github', repositoryId: '1', repositoryOwnerId: '9' };
    expect(await meta.bindSlice('s', first)).toEqual(first);
    expect(await meta.bindSlice('s', { issuer: 'other', repositoryId: '2', repositoryOwnerId: '9' })).toEqual(
      first,
    );
    await meta.close();
  });
});
