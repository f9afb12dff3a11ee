/**
 * Row mappers shared by the SQLite and PostgreSQL metadata stores: both keep the same columns, so a
 * narinfo row (with its slice's binding joined in) reads the same way from either.
 */
import type { AuditEntry, NarFacts, NarInfoRecord, RecentNarInfo, SliceOwner } from './metadata-store.js';

type Row = Record<string, unknown>;

export const str = (v: unknown): string => String(v);
export const optional = (v: unknown): string | undefined =>
  v === null || v === undefined ? undefined : String(v);

/** A slice binding from a row's columns (with `prefix`), or null for an unbound slice. */
export function sliceOwnerOf(row: Row, prefix = ''): SliceOwner | null {
  if (row[`${prefix}repository_id`] === null || row[`${prefix}repository_id`] === undefined) return null;
  return {
    issuer: str(row[`${prefix}issuer`]),
    repositoryId: str(row[`${prefix}repository_id`]),
    repositoryOwnerId: str(row[`${prefix}repository_owner_id`]),
  };
}

/** A `slice_nars` row: what a slice's upload of a NAR file proved. */
export function narFactsOf(row: Row): NarFacts {
  const fileHash = optional(row.file_hash);
  return {
    key: str(row.key),
    compression: str(row.compression) as NarFacts['compression'],
    ...(fileHash && { fileHash }),
    fileSize: Number(row.file_size),
    narHash: str(row.nar_hash),
    narSize: Number(row.nar_size),
  };
}

export function narInfoRecord(row: Row): NarInfoRecord {
  const signedBy = optional(row.signed_by);
  return {
    slice: str(row.slice),
    hashPart: str(row.hash_part),
    storePath: str(row.store_path),
    narKey: str(row.nar_key),
    narinfo: str(row.narinfo),
    createdAt: new Date(Number(row.created_at)),
    owner: sliceOwnerOf(row, 'owner_'),
    // Absent until the first read recorded after the push (retention/access.ts): createdAt then.
    ...(row.last_accessed_at === null || row.last_accessed_at === undefined
      ? {}
      : { lastAccessedAt: new Date(Number(row.last_accessed_at)) }),
    ...(signedBy === undefined ? {} : { signedBy }),
  };
}

/** Narinfo rows with their slice's binding, for the lookups' filters. */
export const NARINFOS_WITH_OWNER = `SELECT n.*, s.issuer AS owner_issuer, s.repository_id AS owner_repository_id,
    s.repository_owner_id AS owner_repository_owner_id
  FROM narinfos n LEFT JOIN slices s ON s.name = n.slice`;

/**
 * A slice's narinfos by last use, newest first (`MetadataStore.recentNarInfos`), with the
 * placeholders of the store's dialect. The ORDER BY is the expression of the index
 * `narinfos_by_slice_use`, so both stores read it backwards from the slice's newest row.
 */
export const recentNarInfosSql = (slice: string, limit: string): string =>
  `SELECT hash_part, coalesce(last_accessed_at, created_at) AS used_at FROM narinfos
     WHERE slice = ${slice} ORDER BY coalesce(last_accessed_at, created_at) DESC LIMIT ${limit}`;

export const recentNarInfo = (row: Row): RecentNarInfo => ({
  hashPart: String(row.hash_part),
  usedAt: Number(row.used_at),
});

export function auditEntry(r: Row): AuditEntry {
  return {
    time: new Date(Number(r.time)),
    slice: str(r.slice),
    storePath: str(r.store_path),
    narSize: Number(r.nar_size),
    fileSize: Number(r.file_size),
    repository: optional(r.repository),
    repositoryId: optional(r.repository_id),
    ref: optional(r.ref),
    workflow: optional(r.workflow),
    runId: optional(r.run_id),
    sha: optional(r.sha),
  };
}
