/**
 * What only the SQLite store has: its files' mode, databases made by earlier versions (the contract
 * is in storage-contract).
 */
import { expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';

/** A database file as an earlier version left it: one table made by `schema`, holding `row`. */
function oldDatabase(schema: string, insert: string, row: (string | number)[]): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-storage-')), 'sluice.db');
  const old = new DatabaseSync(path);
  old.exec(schema);
  old.prepare(insert).run(...row);
  old.close();
  return path;
}

it('opens a database made before uploads recorded their FileHash, reading it from the key', async () => {
  const fileHash = '1'.repeat(52);
  const path = oldDatabase(
    `CREATE TABLE slice_nars (
    slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_size INTEGER NOT NULL,
    nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (slice, key))`,
    'INSERT INTO slice_nars VALUES (?, ?, ?, ?, ?, ?, ?)',
    ['a', `${fileHash}.nar.zst`, 'zstd', 7, 'sha256:x', 9, 0],
  );
  const meta = new SqliteMetadataStore(path);
  expect(await meta.uploadedNar('a', `${fileHash}.nar.zst`)).toEqual({
    key: `${fileHash}.nar.zst`,
    compression: 'zstd',
    fileHash: `sha256:${fileHash}`,
    fileSize: 7,
    narHash: 'sha256:x',
    narSize: 9,
  });
  await meta.close();
});

it('fills the FileHash of rows an earlier version left null from their keys, once', async () => {
  const legacy = '2'.repeat(52);
  // The column as the version that added it made it: rows from before it kept a null.
  const path = oldDatabase(
    `CREATE TABLE slice_nars (
    slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_size INTEGER NOT NULL,
    nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL, created_at INTEGER NOT NULL, file_hash TEXT,
    PRIMARY KEY (slice, key))`,
    'INSERT INTO slice_nars VALUES (?, ?, ?, ?, ?, ?, ?, NULL)',
    ['a', `${legacy}.nar`, 'none', 7, 'sha256:x', 7, 0],
  );
  let meta = new SqliteMetadataStore(path);
  expect((await meta.uploadedNar('a', `${legacy}.nar`))?.fileHash).toBe(`sha256:${legacy}`);
  // Uploaded without a FileHash after the upgrade: still none when the database is opened again.
  const omitted = {
    key: `${'3'.repeat(52)}.nar`,
    compression: 'none' as const,
    fileSize: 7,
    narHash: 'sha256:y',
    narSize: 7,
  };
  await meta.recordUpload('a', omitted);
  await meta.close();
  meta = new SqliteMetadataStore(path);
  expect(await meta.uploadedNar('a', omitted.key)).toEqual(omitted);
  expect((await meta.uploadedNar('a', `${legacy}.nar`))?.fileHash).toBe(`sha256:${legacy}`);
  await meta.close();
});

it("opens a database whose slice bindings predate issuers: they were the default issuer's", async () => {
  const path = oldDatabase(
    `CREATE TABLE slices (name TEXT PRIMARY KEY, repository_id TEXT NOT NULL,
    repository_owner_id TEXT NOT NULL, created_at INTEGER NOT NULL)`,
    'INSERT INTO slices VALUES (?, ?, ?, ?)',
    ['acme/app', '1', '9', 0],
  );
  const meta = new SqliteMetadataStore(path);
  expect(await meta.sliceOwner('acme/app')).toEqual({
    issuer: 'github',
    repositoryId: '1',
    repositoryOwnerId: '9',
  });
  await meta.close();
});

it('makes its database owner-only, with the files SQLite adds beside it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-storage-'));
  const store = new SqliteMetadataStore(join(dir, 'sluice.db'));
  try {
    await store.bindSlice('acme/app', { issuer: 'github', repositoryId: '1', repositoryOwnerId: '2' });
    const files = readdirSync(dir).sort();
    expect(files).toEqual(['sluice.db', 'sluice.db-shm', 'sluice.db-wal']);
    for (const file of files) expect([file, statSync(join(dir, file)).mode & 0o777]).toEqual([file, 0o600]);
  } finally {
    await store.close();
  }
});
