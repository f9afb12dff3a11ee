/**
 * The PostgreSQL schema as numbered migrations. Each replica applies the missing ones at start,
 * under an advisory lock, so replicas starting together apply each exactly once. Append only: a
 * released migration never changes.
 */
import type { PoolClient } from 'pg';
import { RETENTION_MIGRATION } from './pg-retention.js';

export const MIGRATIONS: readonly string[] = [
  // 1: the tables of the SQLite store, with times as milliseconds since the epoch.
  `CREATE TABLE slice_nars (
     slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_hash TEXT NOT NULL,
     file_size BIGINT NOT NULL, nar_hash TEXT NOT NULL, nar_size BIGINT NOT NULL,
     created_at BIGINT NOT NULL,
     PRIMARY KEY (slice, key)
   );
   CREATE TABLE narinfos (
     slice TEXT NOT NULL, hash_part TEXT NOT NULL, store_path TEXT NOT NULL, nar_key TEXT NOT NULL,
     narinfo TEXT NOT NULL, created_at BIGINT NOT NULL,
     PRIMARY KEY (slice, hash_part)
   );
   CREATE INDEX narinfos_by_hash ON narinfos (hash_part);
   CREATE INDEX narinfos_by_nar ON narinfos (nar_key);
   CREATE TABLE slices (
     name TEXT PRIMARY KEY, repository_id TEXT NOT NULL, repository_owner_id TEXT NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE TABLE audit (
     id BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL, slice TEXT NOT NULL, store_path TEXT NOT NULL,
     nar_size BIGINT NOT NULL, file_size BIGINT NOT NULL, repository TEXT, repository_id TEXT,
     ref TEXT, workflow TEXT, run_id TEXT, sha TEXT
   );
   CREATE INDEX audit_by_slice_time ON audit (slice, time);`,
  // 2: narinfos signed when stored (the key that signed them); slice bindings by issuer; lookups
  // filtered per (hash part, slice).
  `ALTER TABLE narinfos ADD COLUMN signed_by TEXT;
   ALTER TABLE slices ADD COLUMN issuer TEXT NOT NULL DEFAULT 'github';
   CREATE INDEX narinfos_by_hash_slice ON narinfos (hash_part, slice);
   DROP INDEX narinfos_by_hash;`,
  // 3: ID tokens exchanged once (until they expire); read tokens listed and revoked.
  `CREATE TABLE used_id_tokens (key TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
   CREATE INDEX used_id_tokens_by_expiry ON used_id_tokens (expires_at);
   CREATE TABLE read_tokens (
     id TEXT PRIMARY KEY, name TEXT NOT NULL, read TEXT NOT NULL, created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT
   );`,
  // 4: insert order for the narinfo set's deltas: the inserting transaction's id. Commits come in
  // any order, so a delta asks from the oldest transaction still running (the snapshot's xmin),
  // not from the newest row seen. Older rows read as 0: only in full answers.
  `ALTER TABLE narinfos ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
   ALTER TABLE narinfos ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
   CREATE INDEX narinfos_by_txid ON narinfos (txid);`,
  // 5: retention: access times, NAR claims, pins, the collector's lease, deletion audit rows.
  RETENTION_MIGRATION,
  // 6: the recent narinfos a job's proxy is handed (each slice's, newest use first).
  // (the ORDER BY of metadata-rows.ts's recentNarInfosSql).
  `CREATE INDEX narinfos_by_slice_use ON narinfos (slice, (coalesce(last_accessed_at, created_at)))`,
  // 7: NARs uploaded by their NarHash without a FileHash (the upload's `file_hash=omit`).
  `ALTER TABLE slice_nars ALTER COLUMN file_hash DROP NOT NULL`,
];

/** An arbitrary constant naming Sluice's migration lock among the database's advisory locks. */
const MIGRATION_LOCK = 0x51_75_1c_e0;

/** Applies the migrations the database lacks; returns the schema version it is at now. */
export async function migrate(client: PoolClient): Promise<number> {
  await client.query('BEGIN');
  try {
    // A replica starting while another migrates waits for it, however long that takes.
    await client.query('SET LOCAL lock_timeout = 0');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM sluice_schema',
    );
    const current = rows[0]?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `the database schema is at version ${current}, newer than this Sluice knows (${MIGRATIONS.length}): upgrade Sluice`,
      );
    }
    for (let version = current + 1; version <= MIGRATIONS.length; version++) {
      await client.query(MIGRATIONS[version - 1]!);
      await client.query('INSERT INTO sluice_schema (version) VALUES ($1)', [version]);
    }
    await client.query('COMMIT');
    return MIGRATIONS.length;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
