/**
 * The RetentionStore half of PgMetadataStore: the queries the collector runs, with the guarantees
 * of the SQLite store under PostgreSQL's concurrency (READ COMMITTED, several replicas). A row that
 * a check and a write depend on is locked first (`FOR UPDATE`, or an upsert, which locks), so a
 * conditional delete, a NAR claim and a narinfo insert for the same NAR never interleave badly;
 * the collector's lease is one row whose expiry is compared in the same statement that takes it.
 */
import type pg from 'pg';
import type { DeletionRecord, NarInfoKey, Pin, StoredNarInfo } from './retention-store.js';

/** A claim older than this was left by a collector that died between claim and delete (as in SQLite). */
export const ABANDONED_CLAIM_MS = 60_000;

type Row = Record<string, unknown>;
export type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>>;
export type Transaction = <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

export const RETENTION_MIGRATION = `ALTER TABLE narinfos ADD COLUMN last_accessed_at BIGINT;
   CREATE TABLE nar_keys (key TEXT PRIMARY KEY, used_at BIGINT NOT NULL, deleting_since BIGINT);
   CREATE TABLE pins (
     slice TEXT NOT NULL, name TEXT NOT NULL, store_paths TEXT NOT NULL, created_at BIGINT NOT NULL,
     expires_at BIGINT, PRIMARY KEY (slice, name)
   );
   CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL);
   CREATE TABLE deletions (
     id BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL, slice TEXT, reason TEXT NOT NULL,
     items TEXT NOT NULL, bytes BIGINT NOT NULL
   );`;

export async function touchNarInfos(query: Query, keys: readonly NarInfoKey[], at: Date): Promise<number> {
  if (keys.length === 0) return 0;
  // The update locks each row it changes: a conditional delete of that row waits for it, then sees
  // the new access time (or this waits for the delete and finds nothing).
  const { rows } = await query(
    `WITH keys AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(slice, hash_part)),
       touched AS (
         UPDATE narinfos n SET last_accessed_at = $3 FROM keys k
           WHERE n.slice = k.slice AND n.hash_part = k.hash_part
             AND coalesce(n.last_accessed_at, n.created_at) < $3
           RETURNING n.slice, n.hash_part)
     SELECT count(*) AS found FROM keys k
       WHERE EXISTS (SELECT 1 FROM touched t WHERE t.slice = k.slice AND t.hash_part = k.hash_part)
          OR EXISTS (SELECT 1 FROM narinfos n WHERE n.slice = k.slice AND n.hash_part = k.hash_part
                       AND coalesce(n.last_accessed_at, n.created_at) >= $3)`,
    [keys.map((key) => key.slice), keys.map((key) => key.hashPart), +at],
  );
  return Number(rows[0]?.found ?? 0);
}

export async function listSlices(query: Query): Promise<string[]> {
  const { rows } = await query('SELECT DISTINCT slice FROM narinfos ORDER BY slice');
  return rows.map((row) => String(row.slice));
}

export function storedNarInfo(row: Row): StoredNarInfo {
  return {
    slice: String(row.slice),
    hashPart: String(row.hash_part),
    storePath: String(row.store_path),
    narKey: String(row.nar_key),
    narinfo: String(row.narinfo),
    createdAt: new Date(Number(row.created_at)),
    lastAccessedAt: new Date(Number(row.last_accessed_at ?? row.created_at)),
  };
}

/** One page of a slice's rows, in hash-part order, after `after` (keyset paging). */
export async function listNarInfoPage(
  query: Query,
  slice: string,
  after: string,
  limit: number,
): Promise<StoredNarInfo[]> {
  const { rows } = await query(
    `SELECT * FROM narinfos WHERE slice = $1 AND hash_part > $2 ORDER BY hash_part LIMIT $3`,
    [slice, after, limit],
  );
  return rows.map(storedNarInfo);
}

export async function narKeysInUse(
  query: Query,
  usedSince: Date,
): Promise<{ referenced: Set<string>; touched: Set<string> }> {
  const keys = async (text: string, values: unknown[] = []) =>
    new Set((await query(text, values)).rows.map((row) => String(row.key)));
  return {
    referenced: await keys('SELECT DISTINCT nar_key AS key FROM narinfos'),
    touched: await keys('SELECT key FROM nar_keys WHERE used_at >= $1', [+usedSince]),
  };
}

async function insertDeletion(client: pg.PoolClient, record: DeletionRecord): Promise<void> {
  await client.query(
    'INSERT INTO deletions (time, slice, reason, items, bytes) VALUES ($1, $2, $3, $4, $5)',
    [+record.time, record.slice, record.reason, JSON.stringify(record.items), record.bytes],
  );
}

export function deleteNarInfos(
  transaction: Transaction,
  slice: string,
  hashParts: readonly string[],
  unusedBefore: Date,
  record: DeletionRecord,
): Promise<boolean> {
  return transaction(async (client) => {
    // Locked in a fixed order (no deadlock with another batch); FOR UPDATE reads the latest access.
    const { rows } = await client.query<Row>(
      `SELECT created_at, last_accessed_at FROM narinfos WHERE slice = $1 AND hash_part = ANY($2::text[])
         ORDER BY hash_part FOR UPDATE`,
      [slice, hashParts],
    );
    const fresh = rows.some(
      (row) =>
        Number(row.last_accessed_at ?? row.created_at) >= +unusedBefore ||
        Number(row.created_at) >= +unusedBefore,
    );
    if (fresh) return false;
    await client.query('DELETE FROM narinfos WHERE slice = $1 AND hash_part = ANY($2::text[])', [
      slice,
      hashParts,
    ]);
    await insertDeletion(client, record);
    return true;
  });
}

export async function touchNar(query: Query, key: string, at: Date): Promise<boolean> {
  // One statement: the upsert locks the row, so a claim in progress either finished (and this
  // sees it) or waits for this.
  const { rows } = await query(
    `INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, $2, NULL)
       ON CONFLICT (key) DO UPDATE SET used_at = greatest(nar_keys.used_at, EXCLUDED.used_at), deleting_since = NULL
       WHERE nar_keys.deleting_since IS NULL OR nar_keys.deleting_since <= $3
       RETURNING key`,
    [key, +at, +at - ABANDONED_CLAIM_MS],
  );
  return rows.length === 1;
}

/**
 * Inside putNarInfo's transaction: locks the NAR's key row (a claim of it waits until the narinfo
 * is committed, then sees it) and says whether a collector holds a live claim on it.
 */
export async function lockNarForInsert(client: pg.PoolClient, key: string, at: Date): Promise<boolean> {
  const { rows } = await client.query<Row>(
    `INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, $2, NULL)
       ON CONFLICT (key) DO UPDATE SET used_at = greatest(nar_keys.used_at, EXCLUDED.used_at)
       RETURNING deleting_since`,
    [key, +at],
  );
  const since = rows[0]?.deleting_since;
  return since !== null && since !== undefined && Number(since) > +at - ABANDONED_CLAIM_MS;
}

export function claimNarDeletion(
  transaction: Transaction,
  key: string,
  unusedBefore: Date,
  at: Date,
): Promise<boolean> {
  return transaction(async (client) => {
    await client.query(
      'INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, 0, NULL) ON CONFLICT DO NOTHING',
      [key],
    );
    const { rows } = await client.query<Row>('SELECT used_at FROM nar_keys WHERE key = $1 FOR UPDATE', [key]);
    if (Number(rows[0]?.used_at ?? 0) >= +unusedBefore) return false;
    // A statement after the lock: it sees every narinfo committed before the lock was granted.
    const used = await client.query('SELECT 1 FROM narinfos WHERE nar_key = $1 LIMIT 1', [key]);
    if (used.rowCount !== 0) return false;
    await client.query('UPDATE nar_keys SET deleting_since = $2 WHERE key = $1', [key, +at]);
    await client.query('DELETE FROM slice_nars WHERE key = $1', [key]);
    return true;
  });
}

export function finishNarDeletion(
  transaction: Transaction,
  keys: readonly string[],
  record?: DeletionRecord,
): Promise<void> {
  return transaction(async (client) => {
    if (keys.length > 0)
      await client.query('DELETE FROM nar_keys WHERE key = ANY($1::text[]) AND deleting_since IS NOT NULL', [
        keys,
      ]);
    if (record) await insertDeletion(client, record);
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

export function putPin(transaction: Transaction, pin: Pin): Promise<void> {
  return transaction(async (client) => {
    await client.query(
      `INSERT INTO pins (slice, name, store_paths, created_at, expires_at) VALUES ($1, $2, '[]', $3, NULL)
         ON CONFLICT DO NOTHING`,
      [pin.slice, pin.name, +pin.createdAt],
    );
    const { rows } = await client.query<Row>('SELECT * FROM pins WHERE slice = $1 AND name = $2 FOR UPDATE', [
      pin.slice,
      pin.name,
    ]);
    const paths = new Set([...(rows[0] ? pinOf(rows[0]).storePaths : []), ...pin.storePaths]);
    await client.query('UPDATE pins SET store_paths = $3, expires_at = $4 WHERE slice = $1 AND name = $2', [
      pin.slice,
      pin.name,
      JSON.stringify([...paths].sort()),
      pin.expiresAt && +pin.expiresAt,
    ]);
  });
}

export async function listPins(query: Query, slice?: string): Promise<Pin[]> {
  const { rows } = await query(
    'SELECT * FROM pins WHERE $1::text IS NULL OR slice = $1 ORDER BY slice, name',
    [slice ?? null],
  );
  return rows.map(pinOf);
}

export async function deletePin(query: Query, slice: string, name: string): Promise<boolean> {
  return (await query('DELETE FROM pins WHERE slice = $1 AND name = $2', [slice, name])).rowCount === 1;
}

/** One statement: taken when free, expired, or already this holder's (replicas race on the row). */
export async function acquireLease(
  query: Query,
  name: string,
  holder: string,
  until: Date,
  at: Date,
): Promise<boolean> {
  const { rows } = await query(
    `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
       RETURNING holder`,
    [name, holder, +until, +at],
  );
  return rows.length === 1;
}

export async function releaseLease(query: Query, name: string, holder: string): Promise<void> {
  await query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
}

export async function listDeletions(
  query: Query,
  filter: { since?: Date; limit?: number },
): Promise<DeletionRecord[]> {
  const { rows } = await query('SELECT * FROM deletions WHERE time >= $1 ORDER BY time, id LIMIT $2', [
    filter.since ? +filter.since : 0,
    filter.limit ?? null,
  ]);
  return rows.map((row) => ({
    time: new Date(Number(row.time)),
    slice: row.slice === null ? null : String(row.slice),
    reason: String(row.reason),
    items: JSON.parse(String(row.items)) as string[],
    bytes: Number(row.bytes),
  }));
}
