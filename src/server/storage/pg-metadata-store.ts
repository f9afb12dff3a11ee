/**
 * MetadataStore on PostgreSQL (`pg`, one pool per process), for several replicas sharing one
 * database. The same guarantees as the SQLite store: put-if-absent through primary keys and
 * `ON CONFLICT DO NOTHING`, a narinfo and its audit row in one statement. A database that cannot
 * be reached (down, restarting, out of connections) makes requests fail with 503 + Retry-After.
 */
import pg from 'pg';
import type {
  AuditEntry,
  HashPartsSince,
  MetadataStore,
  NarFacts,
  NarInfoRecord,
  ReadTokenRecord,
  RecentNarInfo,
  SliceFilter,
  SliceOwner,
} from './metadata-store.js';
import { migrate } from './pg-migrations.js';
import {
  NARINFOS_WITH_OWNER,
  auditEntry,
  narFactsOf,
  narInfoRecord,
  recentNarInfo,
  recentNarInfosSql,
  sliceOwnerOf,
  str,
} from './metadata-rows.js';
import * as retention from './pg-retention.js';
import type { DeletionRecord, NarInfoKey, Pin, StoredNarInfo } from './retention-store.js';
import { StorageUnavailableError } from './unavailable.js';

export interface PgStoreOptions {
  /** Connections per process (default 10). */
  poolSize?: number;
  /** How long a request waits for a connection before it is answered 503 (default 5 s). */
  connectTimeoutMs?: number;
}

type Row = Record<string, unknown>;

/** How long a statement waits for a lock another session holds (lock_timeout). */
export const LOCK_TIMEOUT_MS = 10_000;

/** Errors that mean "the database is not there right now", as opposed to a bug or bad data. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

export function isUnavailable(error: unknown): boolean {
  // Duck-typed, not `instanceof Error`: errors from Node's sockets may come from another realm.
  if (typeof error !== 'object' || error === null) return false;
  const { code, errors, message } = error as { code?: unknown; errors?: unknown; message?: unknown };
  // SQLSTATE classes 08 (connection), 57P (shutting down, starting up), 53 (out of resources);
  // 55P03: lock_timeout (a lock held by a stalled session: retry later).
  if (/^(08|57P|53|55P03)/.test(String(code ?? '')) || UNAVAILABLE_CODES.has(String(code ?? ''))) return true;
  // Node's AggregateError: a connect to every address of a host failed.
  if (Array.isArray(errors) && errors.some(isUnavailable)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    String(message ?? ''),
  );
}

export class PgMetadataStore implements MetadataStore {
  private constructor(private readonly pool: pg.Pool) {}

  /**
   * Connects and applies the migrations the database lacks. Throws (with the driver's message,
   * never the URL) when the database cannot be reached or refuses the login.
   */
  static async open(url: string, options: PgStoreOptions = {}): Promise<PgMetadataStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      // A row another session holds locked (a replica paused or cut off mid-transaction holds its
      // locks until its connection dies): wait this long, then 503, rather than pile up requests on
      // it until the pool is gone. Our own transactions never wait on anything but the database,
      // so a session idle inside one this long is such a replica; the server ends it.
      lock_timeout: LOCK_TIMEOUT_MS,
      idle_in_transaction_session_timeout: 60_000,
      // A connection the server dropped (restart) reports here; the next query opens a new one.
      allowExitOnIdle: false,
    });
    pool.on('error', () => undefined);
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    return new PgMetadataStore(pool);
  }

  /**
   * `name`: a prepared statement, parsed and planned once per connection, for statements every
   * upload or download runs. Never for `SELECT *`: a migration by a newer replica that adds a
   * column would make such a plan fail ("cached plan must not change result type").
   */
  private async query(text: string, values: unknown[] = [], name?: string): Promise<pg.QueryResult<Row>> {
    try {
      return await this.pool.query<Row>(name ? { name, text, values } : { text, values });
    } catch (error) {
      if (isUnavailable(error)) throw new StorageUnavailableError('the database', error);
      throw error;
    }
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      if (isUnavailable(error)) throw new StorageUnavailableError('the database', error);
      throw error;
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = isUnavailable(error);
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      if (broken) throw new StorageUnavailableError('the database', error);
      throw error;
    } finally {
      // A connection that failed mid-transaction is dropped, not handed to the next request.
      client.release(broken);
    }
  }

  async recordUpload(slice: string, facts: NarFacts): Promise<void> {
    await this.query(
      `INSERT INTO slice_nars (slice, key, compression, file_hash, file_size, nar_hash, nar_size, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [
        slice,
        facts.key,
        facts.compression,
        facts.fileHash ?? null,
        facts.fileSize,
        facts.narHash,
        facts.narSize,
        Date.now(),
      ],
    );
  }

  async uploadedNar(slice: string, key: string): Promise<NarFacts | null> {
    const { rows } = await this.query('SELECT * FROM slice_nars WHERE slice = $1 AND key = $2', [slice, key]);
    const row = rows[0];
    return row ? narFactsOf(row) : null;
  }

  async putNarInfo(record: NarInfoRecord, audit: AuditEntry): Promise<'created' | 'exists' | 'nar_missing'> {
    return this.transaction(async (client) => {
      // Locks the NAR's key row a collector's claim also locks, so the two never interleave.
      if (await retention.lockNarForInsert(client, record.narKey, record.createdAt)) return 'nar_missing';
      // The audit row is inserted only from the narinfo row the statement inserted (none when it existed).
      const { rowCount } = await client.query(
        `WITH inserted AS (
           INSERT INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at, signed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING slice
         )
         INSERT INTO audit (time, slice, store_path, nar_size, file_size, repository, repository_id, ref,
             workflow, run_id, sha)
           SELECT $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM inserted`,
        [
          record.slice,
          record.hashPart,
          record.storePath,
          record.narKey,
          record.narinfo,
          +record.createdAt,
          record.signedBy ?? null,
          +audit.time,
          audit.slice,
          audit.storePath,
          audit.narSize,
          audit.fileSize,
          audit.repository ?? null,
          audit.repositoryId ?? null,
          audit.ref ?? null,
          audit.workflow ?? null,
          audit.runId ?? null,
          audit.sha ?? null,
        ],
      );
      return rowCount === 1 ? 'created' : 'exists';
    });
  }

  async findNarInfos(hashParts: readonly string[], readable: SliceFilter): Promise<NarInfoRecord[]> {
    if (hashParts.length === 0) return [];
    // The filter is JavaScript (grants, templates): rows come back with their slice's binding and
    // are filtered here, on the (hash_part, slice) index.
    const { rows } = await this.query(`${NARINFOS_WITH_OWNER} WHERE n.hash_part = ANY($1::text[])`, [
      hashParts,
    ]);
    return rows.map(narInfoRecord).filter((record) => readable(record.slice, record.owner ?? null));
  }

  async recentNarInfos(slice: string, limit: number): Promise<RecentNarInfo[]> {
    return (await this.query(recentNarInfosSql('$1', '$2'), [slice, limit])).rows.map(recentNarInfo);
  }

  async narInfoHashParts(since: string | null): Promise<HashPartsSince> {
    // One statement, one snapshot: every transaction below its xmin has ended, so each narinfo
    // invisible to this snapshot has a txid >= xmin and is in the answer to `since = xmin`.
    const { rows } = await this.query(
      `WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS cursor),
            grouped AS (SELECT slice, string_agg(hash_part, '') AS hash_parts FROM narinfos
                          WHERE txid >= $1::xid8 GROUP BY slice)
       SELECT snap.cursor, g.slice, g.hash_parts, s.issuer AS owner_issuer,
              s.repository_id AS owner_repository_id, s.repository_owner_id AS owner_repository_owner_id
         FROM snap LEFT JOIN grouped g ON true LEFT JOIN slices s ON s.name = g.slice`,
      [since ?? '0'],
    );
    return {
      cursor: str(rows[0]?.cursor ?? '0'),
      slices: rows
        .filter((row) => row.slice !== null)
        .map((row) => ({
          slice: str(row.slice),
          owner: sliceOwnerOf(row, 'owner_'),
          hashParts: str(row.hash_parts),
        })),
    };
  }

  async isNarReadable(key: string, readable: SliceFilter): Promise<boolean> {
    const { rows } = await this.query(
      `SELECT DISTINCT n.slice, s.issuer, s.repository_id, s.repository_owner_id
         FROM narinfos n LEFT JOIN slices s ON s.name = n.slice WHERE n.nar_key = $1`,
      [key],
      'sluice_nar_readers',
    );
    return rows.some((r) => readable(str(r.slice), sliceOwnerOf(r)));
  }

  async sliceOwner(slice: string): Promise<SliceOwner | null> {
    const { rows } = await this.query('SELECT * FROM slices WHERE name = $1', [slice]);
    const row = rows[0];
    return row ? sliceOwnerOf(row) : null;
  }

  async sliceOwners(slices: readonly string[]): Promise<Map<string, SliceOwner>> {
    const { rows } = await this.query('SELECT * FROM slices WHERE name = ANY($1::text[])', [slices]);
    return new Map(rows.map((row) => [str(row.name), sliceOwnerOf(row) as SliceOwner]));
  }

  async bindSlice(slice: string, owner: SliceOwner): Promise<SliceOwner> {
    await this.query(
      `INSERT INTO slices (name, repository_id, repository_owner_id, created_at, issuer)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [slice, owner.repositoryId, owner.repositoryOwnerId, Date.now(), owner.issuer],
    );
    return (await this.sliceOwner(slice)) as SliceOwner;
  }

  async listAudit(filter: { slice?: string; since?: Date; limit?: number }): Promise<AuditEntry[]> {
    const { rows } = await this.query(
      `SELECT * FROM audit WHERE ($1::text IS NULL OR slice = $1) AND time >= $2 ORDER BY time, id LIMIT $3`,
      [filter.slice ?? null, filter.since ? +filter.since : 0, filter.limit ?? null],
    );
    return rows.map(auditEntry);
  }

  async useIdTokenOnce(key: string, expiresAt: Date, now: Date): Promise<boolean> {
    await this.query('DELETE FROM used_id_tokens WHERE expires_at <= $1', [+now]);
    const inserted = await this.query(
      'INSERT INTO used_id_tokens (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [key, +expiresAt],
    );
    return inserted.rowCount === 1;
  }

  async addReadToken(token: ReadTokenRecord): Promise<void> {
    await this.query(
      `INSERT INTO read_tokens (id, name, read, created_at, expires_at, last_used_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        token.id,
        token.name,
        JSON.stringify(token.read),
        +token.createdAt,
        +token.expiresAt,
        token.lastUsedAt ? +token.lastUsedAt : null,
        token.revokedAt ? +token.revokedAt : null,
      ],
    );
  }

  async listReadTokens(): Promise<ReadTokenRecord[]> {
    const { rows } = await this.query('SELECT * FROM read_tokens ORDER BY created_at, id');
    const date = (v: unknown) => (v === null ? null : new Date(Number(v)));
    return rows.map((r) => ({
      id: str(r.id),
      name: str(r.name),
      read: JSON.parse(str(r.read)) as string[],
      createdAt: new Date(Number(r.created_at)),
      expiresAt: new Date(Number(r.expires_at)),
      lastUsedAt: date(r.last_used_at),
      revokedAt: date(r.revoked_at),
    }));
  }

  async revokeReadToken(id: string, at: Date): Promise<boolean> {
    const found = await this.query(
      'UPDATE read_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2',
      [+at, id],
    );
    return found.rowCount === 1;
  }

  async touchReadToken(id: string, at: Date): Promise<{ revoked: boolean } | null> {
    const { rows } = await this.query(
      `UPDATE read_tokens SET last_used_at = greatest(coalesce(last_used_at, 0), $1) WHERE id = $2
         RETURNING revoked_at`,
      [+at, id],
    );
    const row = rows[0];
    return row ? { revoked: row.revoked_at !== null } : null;
  }

  // RetentionStore: the queries live in pg-retention.ts.
  private readonly run: retention.Query = (text, values) => this.query(text, values);
  private readonly tx: retention.Transaction = (work) => this.transaction(work);
  touchNarInfos(keys: readonly NarInfoKey[], at: Date): Promise<number> {
    return retention.touchNarInfos(this.run, keys, at);
  }
  listSlices(): Promise<string[]> {
    return retention.listSlices(this.run);
  }
  listNarInfos(slice: string, after: string, limit: number): Promise<StoredNarInfo[]> {
    return retention.listNarInfoPage(this.run, slice, after, limit);
  }
  listReferencedNarKeys(after: string, limit: number): Promise<string[]> {
    return retention.listReferencedNarKeys(this.run, after, limit);
  }
  listNarKeyUses(after: string, limit: number): Promise<{ key: string; usedAt: Date }[]> {
    return retention.listNarKeyUses(this.run, after, limit);
  }
  deleteNarInfos(slice: string, hashParts: readonly string[], unusedBefore: Date, record: DeletionRecord) {
    return retention.deleteNarInfos(this.tx, slice, hashParts, unusedBefore, record);
  }
  touchNar(key: string, at: Date): Promise<boolean> {
    return retention.touchNar(this.run, key, at);
  }
  claimNarDeletion(key: string, unusedBefore: Date, at: Date): Promise<boolean> {
    return retention.claimNarDeletion(this.tx, key, unusedBefore, at);
  }
  finishNarDeletion(keys: readonly string[], record?: DeletionRecord): Promise<void> {
    return retention.finishNarDeletion(this.tx, keys, record);
  }
  putPin(pin: Pin): Promise<void> {
    return retention.putPin(this.tx, pin);
  }
  listPins(slice?: string): Promise<Pin[]> {
    return retention.listPins(this.run, slice);
  }
  deletePin(slice: string, name: string): Promise<boolean> {
    return retention.deletePin(this.run, slice, name);
  }
  acquireLease(name: string, holder: string, until: Date, at: Date): Promise<boolean> {
    return retention.acquireLease(this.run, name, holder, until, at);
  }
  releaseLease(name: string, holder: string): Promise<void> {
    return retention.releaseLease(this.run, name, holder);
  }
  listDeletions(filter: { since?: Date; limit?: number }): Promise<DeletionRecord[]> {
    return retention.listDeletions(this.run, filter);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
