/** What only the PostgreSQL store has: versioned migrations, applied once by replicas starting together. */
import { expect, it } from '@jest/globals';
import pg from 'pg';
import { MIGRATIONS } from '../../src/server/storage/pg-migrations.js';
import { PgMetadataStore } from '../../src/server/storage/pg-metadata-store.js';
import { freshDatabase } from '../support/backends.js';

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
