/**
 * What the server knows besides NAR bytes: narinfos per slice, which slice proved it holds which
 * NAR, who owns a slice, and the audit log. Every method is async so a networked database
 * (PostgreSQL) can implement the same interface; SQLite is the default.
 */
import type { RetentionStore } from './retention-store.js';

/** Facts about a NAR file, computed by the server while the upload streamed in. */
export interface NarFacts {
  /** The blob key: `<filehash>.nar[.ext]` (Nix's uploads) or `<narhash>.nar[.ext]` (the Action's). */
  key: string;
  compression: 'none' | 'xz' | 'zstd';
  /**
   * `sha256:<nix32>` of the stored file; absent for one uploaded by its NarHash whose uploader
   * wanted none (its narinfos then state no FileHash).
   */
  fileHash?: string;
  fileSize: number;
  /** `sha256:<nix32>` of the uncompressed NAR. */
  narHash: string;
  narSize: number;
}

export interface NarInfoRecord {
  slice: string;
  hashPart: string;
  storePath: string;
  narKey: string;
  /**
   * The narinfo as served: signed by the server as it was stored (see `signedBy`), or without
   * signatures in records from before that (the server then signs when serving).
   */
  narinfo: string;
  /** The public key (`name:base64`) whose signature `narinfo` carries; absent when unsigned. */
  signedBy?: string;
  createdAt: Date;
  /** The last read or push (as recorded, see retention/access.ts); absent = createdAt. */
  lastAccessedAt?: Date;
  /** Filled by lookups: whom a template write bound the record's slice to (null: nobody). */
  owner?: SliceOwner | null;
}

/** CI identity of a write, as carried by the cache token. */
export interface WriterIdentity {
  /** The configured issuer's name (`github`). */
  issuer?: string;
  repository?: string;
  repositoryId?: string;
  repositoryOwnerId?: string;
  ref?: string;
  workflow?: string;
  runId?: string;
  sha?: string;
}

export interface AuditEntry extends WriterIdentity {
  time: Date;
  slice: string;
  storePath: string;
  narSize: number;
  fileSize: number;
}

/** Whom a template slice belongs to: the issuer and ids of the CI job whose write first bound it. */
export interface SliceOwner {
  /** The configured issuer's name (`github`); bindings made before issuers were recorded read as `github`. */
  issuer: string;
  /** Empty when the issuer's tokens carry no such claim. */
  repositoryId: string;
  repositoryOwnerId: string;
}

/** A read-only token made by `sluice token create`, kept so it can be listed and revoked. */
export interface ReadTokenRecord {
  /** The token's `jti`. */
  id: string;
  name: string;
  /** Slice names and patterns it reads. */
  read: string[];
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/**
 * Decides which slices a request may see (read grants, plus public slices). `owner` is the slice's
 * binding: grants that come from templates only cover slices bound to the reader's issuer and ids.
 */
export type SliceFilter = (slice: string, owner: SliceOwner | null) => boolean;

/** One slice's share of `narInfoHashParts`. */
export interface SliceHashParts {
  slice: string;
  owner: SliceOwner | null;
  /** The slice's hash parts (32 characters each) back to back, in any order: one string, not a million. */
  hashParts: string;
}

/** The hash parts of narinfos committed after a cursor, and the cursor that follows them. */
export interface HashPartsSince {
  /**
   * Opaque digits: every narinfo committed before the answer's snapshot is in this answer or in
   * the answer to an earlier cursor; asking from it again returns only later ones (and perhaps a
   * few repeated).
   */
  cursor: string;
  slices: SliceHashParts[];
}

/** A narinfo's hash part and when it was last used (read, else stored), in ms since the epoch. */
export interface RecentNarInfo {
  hashPart: string;
  usedAt: number;
}

export interface MetadataStore extends RetentionStore {
  /** Records that `slice` uploaded (so provably holds) this NAR. Idempotent. */
  recordUpload(slice: string, facts: NarFacts): Promise<void>;
  /** The NAR's facts if `slice` uploaded it, else null: a writer may only reference its own NARs. */
  uploadedNar(slice: string, key: string): Promise<NarFacts | null>;
  /**
   * Inserts the narinfo and its audit row in one transaction, unless the slice has it already.
   * `nar_missing` (nothing written) when a collector has claimed the NAR for deletion.
   */
  putNarInfo(record: NarInfoRecord, audit: AuditEntry): Promise<'created' | 'exists' | 'nar_missing'>;
  /**
   * Every narinfo for these hash parts held by a slice the filter admits, each with its slice's
   * `owner`, in any order. Which one answers a lookup is decided by `chooseNarInfos`
   * (src/server/union-read.ts), the same for every store.
   */
  findNarInfos(hashParts: readonly string[], readable: SliceFilter): Promise<NarInfoRecord[]>;
  /**
   * The hash parts of every narinfo (`since` null) or of those committed after `since` (a cursor
   * this store answered before), grouped by slice with the slice's binding, for the narinfo set
   * (src/server/cache/narinfo-set-index.ts). Must not miss a narinfo whose commit the cursor's
   * snapshot did not see, whatever order concurrent writers commit in.
   */
  narInfoHashParts(since: string | null): Promise<HashPartsSince>;
  /**
   * Up to `limit` of the slice's narinfos, most recently used first (read, else stored: the time
   * retention ages them by), as hash parts with that time; for the recent narinfos a job's proxy
   * holds (src/server/cache/recent-narinfos.ts). Ties in any order.
   */
  recentNarInfos(slice: string, limit: number): Promise<RecentNarInfo[]>;
  /** Whether a narinfo in a slice the filter admits points to this NAR. */
  isNarReadable(key: string, readable: SliceFilter): Promise<boolean>;
  /** The repository a slice belongs to, or null before its first accepted write. */
  sliceOwner(slice: string): Promise<SliceOwner | null>;
  /** The owners of those of `slices` that have one, in one query. */
  sliceOwners(slices: readonly string[]): Promise<Map<string, SliceOwner>>;
  /** Binds the slice to `owner` if it has no owner yet; returns the owner it has now. */
  bindSlice(slice: string, owner: SliceOwner): Promise<SliceOwner>;
  listAudit(filter: { slice?: string; since?: Date; limit?: number }): Promise<AuditEntry[]>;
  /**
   * Records an exchanged ID token (`key`: issuer and jti, or a hash) until `expiresAt`: true the
   * first time, false if it is already recorded and not yet expired. Drops expired records.
   */
  useIdTokenOnce(key: string, expiresAt: Date, now: Date): Promise<boolean>;
  addReadToken(token: ReadTokenRecord): Promise<void>;
  listReadTokens(): Promise<ReadTokenRecord[]>;
  /** Marks it revoked (once); false when no token has this id. */
  revokeReadToken(id: string, at: Date): Promise<boolean>;
  /** Notes a use of the token and answers whether it is revoked, or null when it is not recorded. */
  touchReadToken(id: string, at: Date): Promise<{ revoked: boolean } | null>;
  close(): Promise<void>;
}
