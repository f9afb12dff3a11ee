/** What only the PostgreSQL store has: versioned migrations, applied once by replicas starting together. */
import { expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Hash } from '../../src/nix/hash.js';
import { MIGRATIONS } from '../../src/server/storage/pg-migrations.js';
import { PgMetadataStore } from '../../src/server/storage/pg-metadata-store.js';
import { freshDatabase, sharedBackends } from '../support/backends.js';
import { regularFileNar } from '../support/nar.js';
import { startTestServer } from '../support/server.js';

async function versions(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: number }>(
      'SELECT version FROM sluice_schema ORDER BY version',
    );
    return rows.map((row) => row.version);
  } finally {
    await client.end();
  }
}

it('replicas starting together apply each migration once, and keep the data of earlier starts', async () => {
  const url = await freshDatabase();
  const stores = await Promise.all([1, 2, 3].map(() => PgMetadataStore.open(url)));
  expect(await versions(url)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  await stores[0]!.bindSlice('s', { issuer: 'github', repositoryId: '1', repositoryOwnerId: '2' });
  await Promise.all(stores.map((store) => store.close()));
  const again = await PgMetadataStore.open(url);
  expect(await again.sliceOwner('s')).toEqual({
    issuer: 'github',
    repositoryId: '1',
    repositoryOwnerId: '2',
  });
  await again.close();
});

it('refuses a database whose schema is newer than this version knows', async () => {
  const url = await freshDatabase();
  await (await PgMetadataStore.open(url)).close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('INSERT INTO sluice_schema (version) VALUES ($1)', [MIGRATIONS.length + 1]);
  await client.end();
  await expect(PgMetadataStore.open(url)).rejects.toThrow(
    `the database schema is at version ${MIGRATIONS.length + 1}, newer than this Sluice knows (${MIGRATIONS.length}): upgrade Sluice`,
  );
});

it('a wrong password is refused at open with the reason', async () => {
  const url = new URL(await freshDatabase());
  url.password = 'wrong';
  await expect(PgMetadataStore.open(url.toString())).rejects.toThrow('password authentication failed');
});

it('migrates a database at schema 1: its slice bindings were made by the default issuer', async () => {
  const url = await freshDatabase();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(MIGRATIONS[0]!);
  await client.query(
    'CREATE TABLE sluice_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
  );
  await client.query('INSERT INTO sluice_schema (version) VALUES (1)');
  await client.query(`INSERT INTO slices VALUES ('acme/app', '1', '9', 0)`);
  await client.end();
  const store = await PgMetadataStore.open(url);
  expect(await store.sliceOwner('acme/app')).toEqual({
    issuer: 'github',
    repositoryId: '1',
    repositoryOwnerId: '9',
  });
  expect(await versions(url)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  await store.close();
});

it('a narinfo committed after a cursor was taken, by a transaction that began before it, is in the next delta', async () => {
  const url = await freshDatabase();
  const store = await PgMetadataStore.open(url);
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  try {
    // A writer's transaction gets its id (its insert) before the reader's snapshot and commits after.
    await writer.query('BEGIN');
    await writer.query(
      `INSERT INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at)
         VALUES ('s', $1, '/nix/store/x', 'k.nar', 'x', 0)`,
      ['a'.repeat(32)],
    );
    const before = await store.narInfoHashParts(null);
    expect(before.slices).toEqual([]);
    // A later writer commits first: a cursor "after the newest row seen" would skip the first one.
    await store.putNarInfo(
      {
        slice: 's',
        hashPart: 'b'.repeat(32),
        storePath: '/nix/store/y',
        narKey: 'k.nar',
        narinfo: 'y',
        createdAt: new Date(0),
      },
      { time: new Date(0), slice: 's', storePath: '/nix/store/y', narSize: 1, fileSize: 1 },
    );
    const middle = await store.narInfoHashParts(before.cursor);
    expect(middle.slices.map((s) => s.hashParts)).toEqual(['b'.repeat(32)]);
    await writer.query('COMMIT');
    const after = await store.narInfoHashParts(middle.cursor);
    expect(after.slices.map((s) => s.hashParts.match(/.{32}/g)!.sort())).toEqual([
      ['a'.repeat(32), ...(after.slices[0]!.hashParts.includes('b'.repeat(32)) ? ['b'.repeat(32)] : [])],
    ]);
  } finally {
    await writer.end();
    await store.close();
  }
});

it('a request waiting on a row another session holds locked answers 503 instead of hanging', async () => {
  // A replica stopped (paused, cut off) in the middle of a transaction holds its row locks until
  // its connection dies: every push of that NAR would wait on it, each holding one of the pool's
  // connections, until the whole replica stops answering.
  const backends = await sharedBackends();
  const server = await startTestServer({ yaml: backends.yaml });
  const stalled = new pg.Client({ connectionString: backends.databaseUrl });
  await stalled.connect();
  try {
    const token = await server.ciToken();
    const bytes = regularFileNar(randomBytes(1024));
    const key = `${Hash.of('sha256', bytes).nix32}.nar`;
    await stalled.query('BEGIN');
    await stalled.query('INSERT INTO nar_keys (key, used_at) VALUES ($1, 0)', [key]);
    const started = Date.now();
    const put = await fetch(`${server.url}/nar/${key}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: new Uint8Array(bytes),
      signal: AbortSignal.timeout(30_000),
    });
    expect([put.status, put.headers.get('retry-after')]).toEqual([503, '2']);
    // lock_not_available: the code, never the driver's message.
    expect(await put.text()).toBe('the database is unavailable (55P03): retry shortly\n');
    expect(Date.now() - started).toBeLessThan(20_000);
    // Once the lock is gone, the same push goes through.
    await stalled.query('ROLLBACK');
    const retry = await fetch(`${server.url}/nar/${key}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: new Uint8Array(bytes),
    });
    expect(retry.status).toBe(201);
  } finally {
    await stalled.end();
    await server.close();
  }
}, 60_000);
