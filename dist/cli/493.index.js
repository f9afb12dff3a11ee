export const id = 493;
export const ids = [493];
export const modules = {

/***/ 3493:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  PgMetadataStore: () => (/* binding */ PgMetadataStore)
});

// UNUSED EXPORTS: LOCK_TIMEOUT_MS, isUnavailable

// EXTERNAL MODULE: ./node_modules/pg/esm/index.mjs
var esm = __webpack_require__(3849);
;// CONCATENATED MODULE: ./src/server/storage/pg-retention.ts
/** A claim older than this was left by a collector that died between claim and delete (as in SQLite). */
const ABANDONED_CLAIM_MS = 60_000;
const RETENTION_MIGRATION = `ALTER TABLE narinfos ADD COLUMN last_accessed_at BIGINT;
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
async function touchNarInfos(query, keys, at) {
    if (keys.length === 0)
        return 0;
    // The update locks each row it changes: a conditional delete of that row waits for it, then sees
    // the new access time (or this waits for the delete and finds nothing).
    const { rows } = await query(`WITH keys AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(slice, hash_part)),
       touched AS (
         UPDATE narinfos n SET last_accessed_at = $3 FROM keys k
           WHERE n.slice = k.slice AND n.hash_part = k.hash_part
             AND coalesce(n.last_accessed_at, n.created_at) < $3
           RETURNING n.slice, n.hash_part)
     SELECT count(*) AS found FROM keys k
       WHERE EXISTS (SELECT 1 FROM touched t WHERE t.slice = k.slice AND t.hash_part = k.hash_part)
          OR EXISTS (SELECT 1 FROM narinfos n WHERE n.slice = k.slice AND n.hash_part = k.hash_part
                       AND coalesce(n.last_accessed_at, n.created_at) >= $3)`, [keys.map((key) => key.slice), keys.map((key) => key.hashPart), +at]);
    return Number(rows[0]?.found ?? 0);
}
async function listSlices(query) {
    const { rows } = await query('SELECT DISTINCT slice FROM narinfos ORDER BY slice');
    return rows.map((row) => String(row.slice));
}
function storedNarInfo(row) {
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
async function listNarInfoPage(query, slice, after, limit) {
    const { rows } = await query(`SELECT * FROM narinfos WHERE slice = $1 AND hash_part > $2 ORDER BY hash_part LIMIT $3`, [slice, after, limit]);
    return rows.map(storedNarInfo);
}
async function listReferencedNarKeys(query, after, limit) {
    const { rows } = await query('SELECT DISTINCT nar_key FROM narinfos WHERE nar_key > $1 ORDER BY nar_key LIMIT $2', [after, limit]);
    return rows.map((row) => String(row.nar_key));
}
async function listNarKeyUses(query, after, limit) {
    const { rows } = await query('SELECT key, used_at FROM nar_keys WHERE key > $1 ORDER BY key LIMIT $2', [
        after,
        limit,
    ]);
    return rows.map((row) => ({ key: String(row.key), usedAt: new Date(Number(row.used_at)) }));
}
async function insertDeletion(client, record) {
    await client.query('INSERT INTO deletions (time, slice, reason, items, bytes) VALUES ($1, $2, $3, $4, $5)', [+record.time, record.slice, record.reason, JSON.stringify(record.items), record.bytes]);
}
function deleteNarInfos(transaction, slice, hashParts, unusedBefore, record) {
    return transaction(async (client) => {
        // Locked in a fixed order (no deadlock with another batch); FOR UPDATE reads the latest access.
        const { rows } = await client.query(`SELECT created_at, last_accessed_at FROM narinfos WHERE slice = $1 AND hash_part = ANY($2::text[])
         ORDER BY hash_part FOR UPDATE`, [slice, hashParts]);
        const fresh = rows.some((row) => Number(row.last_accessed_at ?? row.created_at) >= +unusedBefore ||
            Number(row.created_at) >= +unusedBefore);
        if (fresh)
            return false;
        await client.query('DELETE FROM narinfos WHERE slice = $1 AND hash_part = ANY($2::text[])', [
            slice,
            hashParts,
        ]);
        await insertDeletion(client, record);
        return true;
    });
}
async function touchNar(query, key, at) {
    // One statement: the upsert locks the row, so a claim in progress either finished (and this
    // sees it) or waits for this.
    const { rows } = await query(`INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, $2, NULL)
       ON CONFLICT (key) DO UPDATE SET used_at = greatest(nar_keys.used_at, EXCLUDED.used_at), deleting_since = NULL
       WHERE nar_keys.deleting_since IS NULL OR nar_keys.deleting_since <= $3
       RETURNING key`, [key, +at, +at - ABANDONED_CLAIM_MS]);
    return rows.length === 1;
}
/**
 * Inside putNarInfo's transaction: locks the NAR's key row (a claim of it waits until the narinfo
 * is committed, then sees it) and says whether a collector holds a live claim on it.
 */
async function lockNarForInsert(client, key, at) {
    const { rows } = await client.query(`INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, $2, NULL)
       ON CONFLICT (key) DO UPDATE SET used_at = greatest(nar_keys.used_at, EXCLUDED.used_at)
       RETURNING deleting_since`, [key, +at]);
    const since = rows[0]?.deleting_since;
    return since !== null && since !== undefined && Number(since) > +at - ABANDONED_CLAIM_MS;
}
function claimNarDeletion(transaction, key, unusedBefore, at) {
    return transaction(async (client) => {
        await client.query('INSERT INTO nar_keys (key, used_at, deleting_since) VALUES ($1, 0, NULL) ON CONFLICT DO NOTHING', [key]);
        const { rows } = await client.query('SELECT used_at FROM nar_keys WHERE key = $1 FOR UPDATE', [key]);
        if (Number(rows[0]?.used_at ?? 0) >= +unusedBefore)
            return false;
        // A statement after the lock: it sees every narinfo committed before the lock was granted.
        const used = await client.query('SELECT 1 FROM narinfos WHERE nar_key = $1 LIMIT 1', [key]);
        if (used.rowCount !== 0)
            return false;
        await client.query('UPDATE nar_keys SET deleting_since = $2 WHERE key = $1', [key, +at]);
        await client.query('DELETE FROM slice_nars WHERE key = $1', [key]);
        return true;
    });
}
function finishNarDeletion(transaction, keys, record) {
    return transaction(async (client) => {
        if (keys.length > 0)
            await client.query('DELETE FROM nar_keys WHERE key = ANY($1::text[]) AND deleting_since IS NOT NULL', [
                keys,
            ]);
        if (record)
            await insertDeletion(client, record);
    });
}
function pinOf(row) {
    return {
        slice: String(row.slice),
        name: String(row.name),
        storePaths: JSON.parse(String(row.store_paths)),
        createdAt: new Date(Number(row.created_at)),
        expiresAt: row.expires_at === null ? null : new Date(Number(row.expires_at)),
    };
}
function putPin(transaction, pin) {
    return transaction(async (client) => {
        await client.query(`INSERT INTO pins (slice, name, store_paths, created_at, expires_at) VALUES ($1, $2, '[]', $3, NULL)
         ON CONFLICT DO NOTHING`, [pin.slice, pin.name, +pin.createdAt]);
        const { rows } = await client.query('SELECT * FROM pins WHERE slice = $1 AND name = $2 FOR UPDATE', [
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
async function listPins(query, slice) {
    const { rows } = await query('SELECT * FROM pins WHERE $1::text IS NULL OR slice = $1 ORDER BY slice, name', [slice ?? null]);
    return rows.map(pinOf);
}
async function deletePin(query, slice, name) {
    return (await query('DELETE FROM pins WHERE slice = $1 AND name = $2', [slice, name])).rowCount === 1;
}
/** One statement: taken when free, expired, or already this holder's (replicas race on the row). */
async function acquireLease(query, name, holder, until, at) {
    const { rows } = await query(`INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
       RETURNING holder`, [name, holder, +until, +at]);
    return rows.length === 1;
}
async function releaseLease(query, name, holder) {
    await query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
}
async function listDeletions(query, filter) {
    const { rows } = await query('SELECT * FROM deletions WHERE time >= $1 ORDER BY time, id LIMIT $2', [
        filter.since ? +filter.since : 0,
        filter.limit ?? null,
    ]);
    return rows.map((row) => ({
        time: new Date(Number(row.time)),
        slice: row.slice === null ? null : String(row.slice),
        reason: String(row.reason),
        items: JSON.parse(String(row.items)),
        bytes: Number(row.bytes),
    }));
}

;// CONCATENATED MODULE: ./src/server/storage/pg-migrations.ts

const MIGRATIONS = [
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
async function migrate(client) {
    await client.query('BEGIN');
    try {
        // A replica starting while another migrates waits for it, however long that takes.
        await client.query('SET LOCAL lock_timeout = 0');
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query('CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
        const { rows } = await client.query('SELECT max(version) AS version FROM sluice_schema');
        const current = rows[0]?.version ?? 0;
        if (current > MIGRATIONS.length) {
            throw new Error(`the database schema is at version ${current}, newer than this Sluice knows (${MIGRATIONS.length}): upgrade Sluice`);
        }
        for (let version = current + 1; version <= MIGRATIONS.length; version++) {
            await client.query(MIGRATIONS[version - 1]);
            await client.query('INSERT INTO sluice_schema (version) VALUES ($1)', [version]);
        }
        await client.query('COMMIT');
        return MIGRATIONS.length;
    }
    catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
    }
}

// EXTERNAL MODULE: ./src/server/storage/metadata-rows.ts
var metadata_rows = __webpack_require__(9848);
// EXTERNAL MODULE: ./src/server/storage/unavailable.ts
var unavailable = __webpack_require__(7927);
;// CONCATENATED MODULE: ./src/server/storage/pg-metadata-store.ts
/**
 * MetadataStore on PostgreSQL (`pg`, one pool per process), for several replicas sharing one
 * database. The same guarantees as the SQLite store: put-if-absent through primary keys and
 * `ON CONFLICT DO NOTHING`, a narinfo and its audit row in one statement. A database that cannot
 * be reached (down, restarting, out of connections) makes requests fail with 503 + Retry-After.
 */





/** How long a statement waits for a lock another session holds (lock_timeout). */
const LOCK_TIMEOUT_MS = 10_000;
/** Errors that mean "the database is not there right now", as opposed to a bug or bad data. */
const UNAVAILABLE_CODES = new Set([
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
    'EHOSTUNREACH',
    'ENOTFOUND',
]);
function isUnavailable(error) {
    // Duck-typed, not `instanceof Error`: errors from Node's sockets may come from another realm.
    if (typeof error !== 'object' || error === null)
        return false;
    const { code, errors, message } = error;
    // SQLSTATE classes 08 (connection), 57P (shutting down, starting up), 53 (out of resources);
    // 55P03: lock_timeout (a lock held by a stalled session: retry later).
    if (/^(08|57P|53|55P03)/.test(String(code ?? '')) || UNAVAILABLE_CODES.has(String(code ?? '')))
        return true;
    // Node's AggregateError: a connect to every address of a host failed.
    if (Array.isArray(errors) && errors.some(isUnavailable))
        return true;
    return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(String(message ?? ''));
}
class PgMetadataStore {
    pool;
    constructor(pool) {
        this.pool = pool;
    }
    /**
     * Connects and applies the migrations the database lacks. Throws (with the driver's message,
     * never the URL) when the database cannot be reached or refuses the login.
     */
    static async open(url, options = {}) {
        const pool = new esm/* default.Pool */.Ay.Pool({
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
            }
            finally {
                client.release();
            }
        }
        catch (error) {
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
    async query(text, values = [], name) {
        try {
            return await this.pool.query(name ? { name, text, values } : { text, values });
        }
        catch (error) {
            if (isUnavailable(error))
                throw new unavailable/* StorageUnavailableError */.y7('the database', error);
            throw error;
        }
    }
    async transaction(work) {
        let client;
        try {
            client = await this.pool.connect();
        }
        catch (error) {
            if (isUnavailable(error))
                throw new unavailable/* StorageUnavailableError */.y7('the database', error);
            throw error;
        }
        let broken = false;
        try {
            await client.query('BEGIN');
            const result = await work(client);
            await client.query('COMMIT');
            return result;
        }
        catch (error) {
            broken = isUnavailable(error);
            if (!broken)
                await client.query('ROLLBACK').catch(() => undefined);
            if (broken)
                throw new unavailable/* StorageUnavailableError */.y7('the database', error);
            throw error;
        }
        finally {
            // A connection that failed mid-transaction is dropped, not handed to the next request.
            client.release(broken);
        }
    }
    async recordUpload(slice, facts) {
        await this.query(`INSERT INTO slice_nars (slice, key, compression, file_hash, file_size, nar_hash, nar_size, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`, [
            slice,
            facts.key,
            facts.compression,
            facts.fileHash ?? null,
            facts.fileSize,
            facts.narHash,
            facts.narSize,
            Date.now(),
        ]);
    }
    async uploadedNar(slice, key) {
        const { rows } = await this.query('SELECT * FROM slice_nars WHERE slice = $1 AND key = $2', [slice, key]);
        const row = rows[0];
        return row ? (0,metadata_rows/* narFactsOf */.CU)(row) : null;
    }
    async putNarInfo(record, audit) {
        return this.transaction(async (client) => {
            // Locks the NAR's key row a collector's claim also locks, so the two never interleave.
            if (await lockNarForInsert(client, record.narKey, record.createdAt))
                return 'nar_missing';
            // The audit row is inserted only from the narinfo row the statement inserted (none when it existed).
            const { rowCount } = await client.query(`WITH inserted AS (
           INSERT INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at, signed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING slice
         )
         INSERT INTO audit (time, slice, store_path, nar_size, file_size, repository, repository_id, ref,
             workflow, run_id, sha)
           SELECT $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM inserted`, [
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
            ]);
            return rowCount === 1 ? 'created' : 'exists';
        });
    }
    async findNarInfos(hashParts, readable) {
        if (hashParts.length === 0)
            return [];
        // The filter is JavaScript (grants, templates): rows come back with their slice's binding and
        // are filtered here, on the (hash_part, slice) index.
        const { rows } = await this.query(`${metadata_rows/* NARINFOS_WITH_OWNER */.A7} WHERE n.hash_part = ANY($1::text[])`, [
            hashParts,
        ]);
        return rows.map(metadata_rows/* narInfoRecord */.X8).filter((record) => readable(record.slice, record.owner ?? null));
    }
    async recentNarInfos(slice, limit) {
        return (await this.query((0,metadata_rows/* recentNarInfosSql */.WK)('$1', '$2'), [slice, limit])).rows.map(metadata_rows/* recentNarInfo */.Vb);
    }
    async narInfoHashParts(since) {
        // One statement, one snapshot: every transaction below its xmin has ended, so each narinfo
        // invisible to this snapshot has a txid >= xmin and is in the answer to `since = xmin`.
        const { rows } = await this.query(`WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS cursor),
            grouped AS (SELECT slice, string_agg(hash_part, '') AS hash_parts FROM narinfos
                          WHERE txid >= $1::xid8 GROUP BY slice)
       SELECT snap.cursor, g.slice, g.hash_parts, s.issuer AS owner_issuer,
              s.repository_id AS owner_repository_id, s.repository_owner_id AS owner_repository_owner_id
         FROM snap LEFT JOIN grouped g ON true LEFT JOIN slices s ON s.name = g.slice`, [since ?? '0']);
        return {
            cursor: (0,metadata_rows/* str */.gx)(rows[0]?.cursor ?? '0'),
            slices: rows
                .filter((row) => row.slice !== null)
                .map((row) => ({
                slice: (0,metadata_rows/* str */.gx)(row.slice),
                owner: (0,metadata_rows/* sliceOwnerOf */.du)(row, 'owner_'),
                hashParts: (0,metadata_rows/* str */.gx)(row.hash_parts),
            })),
        };
    }
    async isNarReadable(key, readable) {
        const { rows } = await this.query(`SELECT DISTINCT n.slice, s.issuer, s.repository_id, s.repository_owner_id
         FROM narinfos n LEFT JOIN slices s ON s.name = n.slice WHERE n.nar_key = $1`, [key], 'sluice_nar_readers');
        return rows.some((r) => readable((0,metadata_rows/* str */.gx)(r.slice), (0,metadata_rows/* sliceOwnerOf */.du)(r)));
    }
    async sliceOwner(slice) {
        const { rows } = await this.query('SELECT * FROM slices WHERE name = $1', [slice]);
        const row = rows[0];
        return row ? (0,metadata_rows/* sliceOwnerOf */.du)(row) : null;
    }
    async sliceOwners(slices) {
        const { rows } = await this.query('SELECT * FROM slices WHERE name = ANY($1::text[])', [slices]);
        return new Map(rows.map((row) => [(0,metadata_rows/* str */.gx)(row.name), (0,metadata_rows/* sliceOwnerOf */.du)(row)]));
    }
    async bindSlice(slice, owner) {
        await this.query(`INSERT INTO slices (name, repository_id, repository_owner_id, created_at, issuer)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, [slice, owner.repositoryId, owner.repositoryOwnerId, Date.now(), owner.issuer]);
        return (await this.sliceOwner(slice));
    }
    async listAudit(filter) {
        const { rows } = await this.query(`SELECT * FROM audit WHERE ($1::text IS NULL OR slice = $1) AND time >= $2 ORDER BY time, id LIMIT $3`, [filter.slice ?? null, filter.since ? +filter.since : 0, filter.limit ?? null]);
        return rows.map(metadata_rows/* auditEntry */.GE);
    }
    async useIdTokenOnce(key, expiresAt, now) {
        await this.query('DELETE FROM used_id_tokens WHERE expires_at <= $1', [+now]);
        const inserted = await this.query('INSERT INTO used_id_tokens (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [key, +expiresAt]);
        return inserted.rowCount === 1;
    }
    async addReadToken(token) {
        await this.query(`INSERT INTO read_tokens (id, name, read, created_at, expires_at, last_used_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
            token.id,
            token.name,
            JSON.stringify(token.read),
            +token.createdAt,
            +token.expiresAt,
            token.lastUsedAt ? +token.lastUsedAt : null,
            token.revokedAt ? +token.revokedAt : null,
        ]);
    }
    async listReadTokens() {
        const { rows } = await this.query('SELECT * FROM read_tokens ORDER BY created_at, id');
        const date = (v) => (v === null ? null : new Date(Number(v)));
        return rows.map((r) => ({
            id: (0,metadata_rows/* str */.gx)(r.id),
            name: (0,metadata_rows/* str */.gx)(r.name),
            read: JSON.parse((0,metadata_rows/* str */.gx)(r.read)),
            createdAt: new Date(Number(r.created_at)),
            expiresAt: new Date(Number(r.expires_at)),
            lastUsedAt: date(r.last_used_at),
            revokedAt: date(r.revoked_at),
        }));
    }
    async revokeReadToken(id, at) {
        const found = await this.query('UPDATE read_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2', [+at, id]);
        return found.rowCount === 1;
    }
    async touchReadToken(id, at) {
        const { rows } = await this.query(`UPDATE read_tokens SET last_used_at = greatest(coalesce(last_used_at, 0), $1) WHERE id = $2
         RETURNING revoked_at`, [+at, id]);
        const row = rows[0];
        return row ? { revoked: row.revoked_at !== null } : null;
    }
    // RetentionStore: the queries live in pg-retention.ts.
    run = (text, values) => this.query(text, values);
    tx = (work) => this.transaction(work);
    touchNarInfos(keys, at) {
        return touchNarInfos(this.run, keys, at);
    }
    listSlices() {
        return listSlices(this.run);
    }
    listNarInfos(slice, after, limit) {
        return listNarInfoPage(this.run, slice, after, limit);
    }
    listReferencedNarKeys(after, limit) {
        return listReferencedNarKeys(this.run, after, limit);
    }
    listNarKeyUses(after, limit) {
        return listNarKeyUses(this.run, after, limit);
    }
    deleteNarInfos(slice, hashParts, unusedBefore, record) {
        return deleteNarInfos(this.tx, slice, hashParts, unusedBefore, record);
    }
    touchNar(key, at) {
        return touchNar(this.run, key, at);
    }
    claimNarDeletion(key, unusedBefore, at) {
        return claimNarDeletion(this.tx, key, unusedBefore, at);
    }
    finishNarDeletion(keys, record) {
        return finishNarDeletion(this.tx, keys, record);
    }
    putPin(pin) {
        return putPin(this.tx, pin);
    }
    listPins(slice) {
        return listPins(this.run, slice);
    }
    deletePin(slice, name) {
        return deletePin(this.run, slice, name);
    }
    acquireLease(name, holder, until, at) {
        return acquireLease(this.run, name, holder, until, at);
    }
    releaseLease(name, holder) {
        return releaseLease(this.run, name, holder);
    }
    listDeletions(filter) {
        return listDeletions(this.run, filter);
    }
    async close() {
        await this.pool.end().catch(() => undefined);
    }
}


/***/ })

};
