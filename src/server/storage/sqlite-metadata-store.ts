/** MetadataStore on SQLite (`node:sqlite`), one file in the data directory, WAL mode. */
import { closeSync, openSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
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
import {
  recentNarInfo,
  recentNarInfosSql,
  NARINFOS_WITH_OWNER,
  auditEntry,
  narFactsOf,
  narInfoRecord,
  sliceOwnerOf,
  str,
} from './metadata-rows.js';
import type { DeletionRecord, NarInfoKey, Pin, StoredNarInfo } from './retention-store.js';
import * as retention from './sqlite-retention.js';
import { readHashParts } from './sqlite-narinfo-set.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS slice_nars (
  slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_size INTEGER NOT NULL,
  nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL, created_at INTEGER NOT NULL, file_hash TEXT,
  PRIMARY KEY (slice, key)
);
CREATE TABLE IF NOT EXISTS narinfos (
  slice TEXT NOT NULL, hash_part TEXT NOT NULL, store_path TEXT NOT NULL, nar_key TEXT NOT NULL,
  narinfo TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (slice, hash_part)
);
CREATE INDEX IF NOT EXISTS narinfos_by_hash_slice ON narinfos (hash_part, slice);
DROP INDEX IF EXISTS narinfos_by_hash;
CREATE INDEX IF NOT EXISTS narinfos_by_nar ON narinfos (nar_key);
CREATE TABLE IF NOT EXISTS slices (
  name TEXT PRIMARY KEY, repository_id TEXT NOT NULL, repository_owner_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, issuer TEXT NOT NULL DEFAULT 'github'
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, slice TEXT NOT NULL,
  store_path TEXT NOT NULL, nar_size INTEGER NOT NULL, file_size INTEGER NOT NULL,
  repository TEXT, repository_id TEXT, ref TEXT, workflow TEXT, run_id TEXT, sha TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_slice_time ON audit (slice, time);
CREATE TABLE IF NOT EXISTS used_id_tokens (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS used_id_tokens_by_expiry ON used_id_tokens (expires_at);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS read_tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, read TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER
);
`;

type Row = Record<string, string | number | null>;

export class SqliteMetadataStore implements MetadataStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  /** The filter of the query running now, for `sluice_readable(slice)` (queries run synchronously). */
  private readable: SliceFilter = () => false;

  constructor(path: string) {
    // Owner-only, like the key files: the database holds every slice's narinfos and the audit log,
    // and a data directory opened for nginx's workers (x_accel_redirect) must not open it too.
    // SQLite gives its -wal and -shm files the database file's mode.
    closeSync(openSync(path, 'a', 0o600));
    this.db = new DatabaseSync(path);
    // WAL + synchronous=NORMAL: no fsync per commit (FULL's fsync blocked the event loop ~2 ms per
    // upload and per narinfo). The database stays consistent; a power loss may drop the last commits,
    // which a cache survives: blobs are durable before their record, a lost narinfo is pushed again.
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
    this.db.exec(SCHEMA);
    this.addFileHashColumn();
    retention.migrateRetention(this.db);
    this.addColumn('narinfos', 'signed_by', 'TEXT');
    // Bindings made before several issuers were kept apart were all made by the default issuer.
    this.addColumn('slices', 'issuer', `TEXT NOT NULL DEFAULT 'github'`);
    // Insert order for the narinfo set's deltas: a counter, never reused (a rowid would be after a
    // delete). Rows from before it have none and are only in full answers.
    this.addColumn('narinfos', 'seq', 'INTEGER');
    this.db.exec('CREATE INDEX IF NOT EXISTS narinfos_by_seq ON narinfos (seq)');
    // The recent narinfos' order (metadata-rows.ts's recentNarInfosSql), read backwards per slice.
    this.db.exec(
      'CREATE INDEX IF NOT EXISTS narinfos_by_slice_use ON narinfos (slice, coalesce(last_accessed_at, created_at))',
    );
    // Slices are filtered inside the query, on the (hash_part, slice) index: a narinfo in a slice the
    // reader cannot see is never returned, so it costs (and times) about like one that does not exist.
    this.db.function('sluice_readable', (slice, issuer, repositoryId, repositoryOwnerId) =>
      this.readable(
        String(slice),
        sliceOwnerOf({ issuer, repository_id: repositoryId, repository_owner_id: repositoryOwnerId } as Row),
      )
        ? 1
        : 0,
    );
  }

  /** Runs `query` with `readable` as the filter `sluice_readable(...)` applies. */
  private filtered<T>(readable: SliceFilter, query: () => T): T {
    this.readable = readable;
    try {
      return query();
    } finally {
      this.readable = () => false;
    }
  }

  private addColumn(table: string, column: string, type: string): void {
    const columns = this.db.prepare(`PRAGMA table_info(${table})`).all() as Row[];
    if (!columns.some((existing) => existing.name === column)) {
      this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
  }

  /**
   * Databases made before NARs could be named by their NarHash lack `file_hash`: their keys are all
   * `<filehash>.nar[.ext]`, so it is filled from the key. Until uploads could leave it out (user
   * version 1), such rows kept a null, read from the key then: filled the same way, once, so that a
   * null now means "uploaded without a FileHash".
   */
  private addFileHashColumn(): void {
    this.addColumn('slice_nars', 'file_hash', 'TEXT');
    const { user_version: version } = this.db.prepare('PRAGMA user_version').get() as Row;
    if (Number(version) >= 1) return;
    this.db.exec(`BEGIN;
      UPDATE slice_nars SET file_hash = 'sha256:' || substr(key, 1, 52) WHERE file_hash IS NULL;
      PRAGMA user_version = 1;
      COMMIT;`);
  }

  /** Prepared once, reused: narinfo lookups are the hot path (Nix asks for every path of a closure). */
  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  async recordUpload(slice: string, facts: NarFacts): Promise<void> {
    this.sql(
      `INSERT OR IGNORE INTO slice_nars
         (slice, key, compression, file_hash, file_size, nar_hash, nar_size, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      slice,
      facts.key,
      facts.compression,
      facts.fileHash ?? null,
      facts.fileSize,
      facts.narHash,
      facts.narSize,
      Date.now(),
    );
  }

  async uploadedNar(slice: string, key: string): Promise<NarFacts | null> {
    const row = this.sql('SELECT * FROM slice_nars WHERE slice = ? AND key = ?').get(slice, key) as
      Row | undefined;
    return row ? narFactsOf(row) : null;
  }

  async putNarInfo(record: NarInfoRecord, audit: AuditEntry): Promise<'created' | 'exists' | 'nar_missing'> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      if (retention.isNarClaimed(this.run, record.narKey, record.createdAt)) {
        this.db.exec('ROLLBACK');
        return 'nar_missing';
      }
      // Writes are serialised (BEGIN IMMEDIATE), so sequence numbers commit in order.
      const { value: seq } = this.sql(
        `INSERT INTO sequences (name, value) VALUES ('narinfos', 1)
           ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`,
      ).get() as { value: number };
      const inserted = this.sql(
        `INSERT OR IGNORE INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at, signed_by, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        record.slice,
        record.hashPart,
        record.storePath,
        record.narKey,
        record.narinfo,
        +record.createdAt,
        record.signedBy ?? null,
        seq,
      );
      if (inserted.changes === 0) {
        this.db.exec('ROLLBACK');
        return 'exists';
      }
      this.sql(
        `INSERT INTO audit (time, slice, store_path, nar_size, file_size, repository, repository_id, ref,
             workflow, run_id, sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
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
      );
      this.db.exec('COMMIT');
      return 'created';
    } catch (e) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async findNarInfos(hashParts: readonly string[], readable: SliceFilter): Promise<NarInfoRecord[]> {
    // One statement for the batch: the hash parts go in as one JSON array (no SQL built from input).
    const rows = this.filtered(readable, () =>
      this.sql(
        `${NARINFOS_WITH_OWNER} WHERE n.hash_part IN (SELECT value FROM json_each(?))
           AND sluice_readable(n.slice, s.issuer, s.repository_id, s.repository_owner_id)`,
      ).all(JSON.stringify(hashParts)),
    ) as Row[];
    return rows.map(narInfoRecord);
  }

  async narInfoHashParts(since: string | null): Promise<HashPartsSince> {
    return readHashParts(this.run, since);
  }

  async recentNarInfos(slice: string, limit: number): Promise<RecentNarInfo[]> {
    return (this.sql(recentNarInfosSql('?', '?')).all(slice, limit) as Row[]).map(recentNarInfo);
  }

  async isNarReadable(key: string, readable: SliceFilter): Promise<boolean> {
    const rows = this.sql(
      `SELECT DISTINCT n.slice, s.issuer, s.repository_id, s.repository_owner_id
         FROM narinfos n LEFT JOIN slices s ON s.name = n.slice WHERE n.nar_key = ?`,
    ).all(key) as Row[];
    return rows.some((r) => readable(str(r.slice), sliceOwnerOf(r)));
  }

  async sliceOwner(slice: string): Promise<SliceOwner | null> {
    const row = this.sql('SELECT * FROM slices WHERE name = ?').get(slice) as Row | undefined;
    return row ? sliceOwnerOf(row) : null;
  }

  async sliceOwners(slices: readonly string[]): Promise<Map<string, SliceOwner>> {
    const rows = this.sql('SELECT * FROM slices WHERE name IN (SELECT value FROM json_each(?))').all(
      JSON.stringify(slices),
    ) as Row[];
    return new Map(rows.map((row) => [str(row.name), sliceOwnerOf(row) as SliceOwner]));
  }

  async bindSlice(slice: string, owner: SliceOwner): Promise<SliceOwner> {
    this.sql(
      `INSERT OR IGNORE INTO slices (name, repository_id, repository_owner_id, created_at, issuer)
         VALUES (?, ?, ?, ?, ?)`,
    ).run(slice, owner.repositoryId, owner.repositoryOwnerId, Date.now(), owner.issuer);
    return (await this.sliceOwner(slice)) as SliceOwner;
  }

  async listAudit(filter: { slice?: string; since?: Date; limit?: number }): Promise<AuditEntry[]> {
    const rows = this.sql(
      `SELECT * FROM audit WHERE (?1 IS NULL OR slice = ?1) AND time >= ?2 ORDER BY time, id LIMIT ?3`,
    ).all(filter.slice ?? null, filter.since ? +filter.since : 0, filter.limit ?? -1) as Row[];
    return rows.map(auditEntry);
  }

  async useIdTokenOnce(key: string, expiresAt: Date, now: Date): Promise<boolean> {
    this.sql('DELETE FROM used_id_tokens WHERE expires_at <= ?').run(+now);
    return (
      this.sql('INSERT OR IGNORE INTO used_id_tokens (key, expires_at) VALUES (?, ?)').run(key, +expiresAt)
        .changes === 1
    );
  }

  async addReadToken(token: ReadTokenRecord): Promise<void> {
    this.sql(
      `INSERT INTO read_tokens (id, name, read, created_at, expires_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      token.id,
      token.name,
      JSON.stringify(token.read),
      +token.createdAt,
      +token.expiresAt,
      token.lastUsedAt ? +token.lastUsedAt : null,
      token.revokedAt ? +token.revokedAt : null,
    );
  }

  async listReadTokens(): Promise<ReadTokenRecord[]> {
    const rows = this.sql('SELECT * FROM read_tokens ORDER BY created_at, id').all() as Row[];
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
    const found = this.sql('UPDATE read_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?').run(
      +at,
      id,
    );
    return found.changes === 1;
  }

  async touchReadToken(id: string, at: Date): Promise<{ revoked: boolean } | null> {
    const row = this.sql(
      'UPDATE read_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ? RETURNING revoked_at',
    ).get(+at, id) as Row | undefined;
    return row ? { revoked: row.revoked_at !== null } : null;
  }

  // RetentionStore: the queries live in sqlite-retention.ts.
  private readonly run = this.sql.bind(this);
  async touchNarInfos(keys: readonly NarInfoKey[], at: Date): Promise<number> {
    return retention.touchNarInfos(this.db, this.run, keys, at);
  }
  async listSlices(): Promise<string[]> {
    return retention.listSlices(this.run);
  }
  async listNarInfos(slice: string, after: string, limit: number): Promise<StoredNarInfo[]> {
    return retention.listNarInfos(this.run, slice, after, limit);
  }
  async listReferencedNarKeys(after: string, limit: number): Promise<string[]> {
    return retention.listReferencedNarKeys(this.run, after, limit);
  }
  async listNarKeyUses(after: string, limit: number): Promise<{ key: string; usedAt: Date }[]> {
    return retention.listNarKeyUses(this.run, after, limit);
  }
  async deleteNarInfos(
    slice: string,
    hashParts: readonly string[],
    unusedBefore: Date,
    record: DeletionRecord,
  ) {
    return retention.deleteNarInfos(this.db, this.run, slice, hashParts, unusedBefore, record);
  }
  async touchNar(key: string, at: Date): Promise<boolean> {
    return retention.touchNar(this.db, this.run, key, at);
  }
  async claimNarDeletion(key: string, unusedBefore: Date, at: Date): Promise<boolean> {
    return retention.claimNarDeletion(this.db, this.run, key, unusedBefore, at);
  }
  async finishNarDeletion(keys: readonly string[], record?: DeletionRecord): Promise<void> {
    retention.finishNarDeletion(this.db, this.run, keys, record);
  }
  async putPin(pin: Pin): Promise<void> {
    retention.putPin(this.db, this.run, pin);
  }
  async listPins(slice?: string): Promise<Pin[]> {
    return retention.listPins(this.run, slice);
  }
  async deletePin(slice: string, name: string): Promise<boolean> {
    return retention.deletePin(this.run, slice, name);
  }
  async acquireLease(name: string, holder: string, until: Date, at: Date): Promise<boolean> {
    return retention.acquireLease(this.db, this.run, name, holder, until, at);
  }
  async releaseLease(name: string, holder: string): Promise<void> {
    retention.releaseLease(this.run, name, holder);
  }
  async listDeletions(filter: { since?: Date; limit?: number }): Promise<DeletionRecord[]> {
    return retention.listDeletions(this.run, filter);
  }

  async close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
  }
}
