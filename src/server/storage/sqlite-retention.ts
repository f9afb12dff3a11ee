/**
 * The RetentionStore half of SqliteMetadataStore: tables for NAR key claims, pins, leases and
 * deletion audit rows, and the queries the collector runs. Each function takes the open database.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { DeletionRecord, NarInfoKey, Pin, StoredNarInfo } from './retention-store.js';

export const RETENTION_SCHEMA = `
CREATE TABLE IF NOT EXISTS nar_keys (
  key TEXT PRIMARY KEY, used_at INTEGER NOT NULL, deleting_since INTEGER
);
CREATE TABLE IF NOT EXISTS pins (
  slice TEXT NOT NULL, name TEXT NOT NULL, store_paths TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER, PRIMARY KEY (slice, name)
);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, slice TEXT, reason TEXT NOT NULL,
  items TEXT NOT NULL, bytes INTEGER NOT NULL
);
`;

/** A claim older than this was left by a collector that died between claim and delete. */
export const ABANDONED_CLAIM_MS = 60_000;

type Row = Record<string, string | number | null>;
export type Sql = (text: string) => StatementSync;

/** Runs `body` in an IMMEDIATE transaction (the write lock first, so check-then-write is atomic). */
export function transaction<T>(db: DatabaseSync, body: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = body();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/** Databases made before retention lack `narinfos.last_accessed_at`: null reads as created_at. */
export function migrateRetention(db: DatabaseSync): void {
  db.exec(RETENTION_SCHEMA);
  const columns = db.prepare('PRAGMA table_info(narinfos)').all() as Row[];
  if (!columns.some((column) => column.name === 'last_accessed_at'))
    db.exec('ALTER TABLE narinfos ADD COLUMN last_accessed_at INTEGER');
}

export function touchNarInfos(db: DatabaseSync, sql: Sql, keys: readonly NarInfoKey[], at: Date): number {
  if (keys.length === 0) return 0;
  const statement = sql(
    `UPDATE narinfos SET last_accessed_at = ?1
       WHERE slice = ?2 AND hash_part = ?3 AND coalesce(last_accessed_at, created_at) < ?1`,
  );
  const exists = sql('SELECT 1 FROM narinfos WHERE slice = ? AND hash_part = ?');
  return transaction(db, () => {
    let found = 0;
    for (const key of keys) {
      const changed = statement.run(+at, key.slice, key.hashPart).changes;
      if (Number(changed) > 0 || exists.get(key.slice, key.hashPart)) found++;
    }
    return found;
  });
}

export function listSlices(sql: Sql): string[] {
  return (sql('SELECT DISTINCT slice FROM narinfos ORDER BY slice').all() as Row[]).map((r) =>
    String(r.slice),
  );
}

export function listNarInfos(sql: Sql, slice: string, after: string, limit: number): StoredNarInfo[] {
  const rows = sql('SELECT * FROM narinfos WHERE slice = ? AND hash_part > ? ORDER BY hash_part LIMIT ?').all(
    slice,
    after,
    limit,
  ) as Row[];
  return rows.map((row) => ({
    slice: String(row.slice),
    hashPart: String(row.hash_part),
    storePath: String(row.store_path),
    narKey: String(row.nar_key),
    narinfo: String(row.narinfo),
    createdAt: new Date(Number(row.created_at)),
    lastAccessedAt: new Date(Number(row.last_accessed_at ?? row.created_at)),
  }));
}

export function narKeysInUse(sql: Sql, usedSince: Date): { referenced: Set<string>; touched: Set<string> } {
  const keys = (text: string, ...args: number[]) =>
    new Set((sql(text).all(...args) as Row[]).map((r) => String(r.key)));
  return {
    referenced: keys('SELECT DISTINCT nar_key AS key FROM narinfos'),
    touched: keys('SELECT key FROM nar_keys WHERE used_at >= ?', +usedSince),
  };
}

function insertDeletion(sql: Sql, record: DeletionRecord): void {
  sql('INSERT INTO deletions (time, slice, reason, items, bytes) VALUES (?, ?, ?, ?, ?)').run(
    +record.time,
    record.slice,
    record.reason,
    JSON.stringify(record.items),
    record.bytes,
  );
}

export function deleteNarInfos(
  db: DatabaseSync,
  sql: Sql,
  slice: string,
  hashParts: readonly string[],
  unusedBefore: Date,
  record: DeletionRecord,
): boolean {
  const parts = JSON.stringify(hashParts);
  return transaction(db, () => {
    const fresh = sql(
      `SELECT count(*) AS n FROM narinfos WHERE slice = ? AND hash_part IN (SELECT value FROM json_each(?))
         AND (created_at >= ?3 OR coalesce(last_accessed_at, created_at) >= ?3)`,
    ).get(slice, parts, +unusedBefore) as Row;
    if (Number(fresh.n) > 0) return false;
    sql('DELETE FROM narinfos WHERE slice = ? AND hash_part IN (SELECT value FROM json_each(?))').run(
      slice,
      parts,
    );
    insertDeletion(sql, record);
    return true;
  });
}

export function touchNar(db: DatabaseSync, sql: Sql, key: string, at: Date): boolean {
  return transaction(db, () => {
    const row = sql('SELECT deleting_since FROM nar_keys WHERE key = ?').get(key) as Row | undefined;
    if (row?.deleting_since != null && Number(row.deleting_since) > +at - ABANDONED_CLAIM_MS) return false;
    sql(
      `INSERT INTO nar_keys (key, used_at, deleting_since) VALUES (?1, ?2, NULL)
         ON CONFLICT (key) DO UPDATE SET used_at = max(used_at, ?2), deleting_since = NULL`,
    ).run(key, +at);
    return true;
  });
}

/** Whether a narinfo is being inserted for a NAR a collector claimed (the insert must not happen). */
export function isNarClaimed(sql: Sql, key: string, at: Date): boolean {
  const row = sql('SELECT deleting_since FROM nar_keys WHERE key = ?').get(key) as Row | undefined;
  return row?.deleting_since != null && Number(row.deleting_since) > +at - ABANDONED_CLAIM_MS;
}

export function claimNarDeletion(
  db: DatabaseSync,
  sql: Sql,
  key: string,
  unusedBefore: Date,
  at: Date,
): boolean {
  return transaction(db, () => {
    if (sql('SELECT 1 FROM narinfos WHERE nar_key = ? LIMIT 1').get(key)) return false;
    const row = sql('SELECT used_at FROM nar_keys WHERE key = ?').get(key) as Row | undefined;
    if (row && Number(row.used_at) >= +unusedBefore) return false;
    sql(
      `INSERT INTO nar_keys (key, used_at, deleting_since) VALUES (?1, 0, ?2)
         ON CONFLICT (key) DO UPDATE SET deleting_since = ?2`,
    ).run(key, +at);
    sql('DELETE FROM slice_nars WHERE key = ?').run(key);
    return true;
  });
}

export function finishNarDeletion(
  db: DatabaseSync,
  sql: Sql,
  keys: readonly string[],
  record?: DeletionRecord,
): void {
  transaction(db, () => {
    const remove = sql('DELETE FROM nar_keys WHERE key = ? AND deleting_since IS NOT NULL');
    for (const key of keys) remove.run(key);
    if (record) insertDeletion(sql, record);
  });
}

function pinOf(row: Row): Pin {
  return {
    slice: String(row.slice),
    name: String(row.name),
    storePaths: JSON.parse(String(row.store_paths)) as string[],
    createdAt: new Date(Number(row.created_at)),
    expiresAt: row.expires_at === null ? null : new Date(Number(row.expires_at)),
  };
}

export function putPin(db: DatabaseSync, sql: Sql, pin: Pin): void {
  transaction(db, () => {
    const row = sql('SELECT * FROM pins WHERE slice = ? AND name = ?').get(pin.slice, pin.name) as
      Row | undefined;
    const paths = new Set([...(row ? pinOf(row).storePaths : []), ...pin.storePaths]);
    sql(
      `INSERT INTO pins (slice, name, store_paths, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (slice, name) DO UPDATE SET store_paths = excluded.store_paths,
           expires_at = excluded.expires_at`,
    ).run(
      pin.slice,
      pin.name,
      JSON.stringify([...paths].sort()),
      +pin.createdAt,
      pin.expiresAt && +pin.expiresAt,
    );
  });
}

export function listPins(sql: Sql, slice?: string): Pin[] {
  const rows = sql('SELECT * FROM pins WHERE ?1 IS NULL OR slice = ?1 ORDER BY slice, name').all(
    slice ?? null,
  ) as Row[];
  return rows.map(pinOf);
}

export function deletePin(sql: Sql, slice: string, name: string): boolean {
  return Number(sql('DELETE FROM pins WHERE slice = ? AND name = ?').run(slice, name).changes) > 0;
}

export function acquireLease(
  db: DatabaseSync,
  sql: Sql,
  name: string,
  holder: string,
  until: Date,
  at: Date,
): boolean {
  return transaction(db, () => {
    const row = sql('SELECT * FROM leases WHERE name = ?').get(name) as Row | undefined;
    if (row && String(row.holder) !== holder && Number(row.expires_at) > +at) return false;
    sql(
      `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at`,
    ).run(name, holder, +until);
    return true;
  });
}

export function releaseLease(sql: Sql, name: string, holder: string): void {
  sql('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
}

export function listDeletions(sql: Sql, filter: { since?: Date; limit?: number }): DeletionRecord[] {
  const rows = sql('SELECT * FROM deletions WHERE time >= ? ORDER BY time, id LIMIT ?').all(
    filter.since ? +filter.since : 0,
    filter.limit ?? -1,
  ) as Row[];
  return rows.map((row) => ({
    time: new Date(Number(row.time)),
    slice: row.slice === null ? null : String(row.slice),
    reason: String(row.reason),
    items: JSON.parse(String(row.items)) as string[],
    bytes: Number(row.bytes),
  }));
}
