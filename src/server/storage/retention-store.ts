/**
 * What the collector (src/server/retention) needs of the metadata store, beyond serving and
 * uploading: narinfo rows with their access times, conditional deletes, NAR key claims (so a push
 * and a deletion of the same NAR never interleave badly), pins and the collector's lease.
 * Every write takes its time from the caller, so the server's clock can be injected in tests.
 */
/** A narinfo row as the collector sees it (a NarInfoRecord's columns) with its last read or push. */
export interface StoredNarInfo {
  slice: string;
  hashPart: string;
  storePath: string;
  narKey: string;
  /** The narinfo as stored (FileSize and References are read from it). */
  narinfo: string;
  createdAt: Date;
  lastAccessedAt: Date;
}

export interface NarInfoKey {
  slice: string;
  hashPart: string;
}

/** One batch of deletions, kept as an audit row (`sluice gc` prints them; so does the server's log). */
export interface DeletionRecord {
  time: Date;
  /** The slice, or null for NAR files no narinfo used (orphans). */
  slice: string | null;
  /** `age`, `size`, `pr-ttl` (narinfos) or `orphan`, `unused` (NAR files). */
  reason: string;
  /** Store paths (narinfos) or blob keys (NAR files). */
  items: string[];
  bytes: number;
}

export interface Pin {
  slice: string;
  name: string;
  /** Full store paths; each is kept with its closure in the slice. */
  storePaths: string[];
  createdAt: Date;
  /** Null: never expires. */
  expiresAt: Date | null;
}

export interface RetentionStore {
  /**
   * Sets the last access of these rows to `at` (reads record it through here, in batches and only
   * when the stored time is stale). Returns how many rows still existed.
   */
  touchNarInfos(keys: readonly NarInfoKey[], at: Date): Promise<number>;
  /** Slices holding at least one narinfo. */
  listSlices(): Promise<string[]>;
  /**
   * One page of the slice's rows in hash-part order, those after `after` ('' for the first page):
   * the collector reads a big slice page by page, so one read never holds the store (or, for
   * SQLite, the event loop) for long.
   */
  listNarInfos(slice: string, after: string, limit: number): Promise<StoredNarInfo[]>;
  /** Blob keys some narinfo (in any slice) points to, and keys a push touched at or after `usedSince`. */
  narKeysInUse(usedSince: Date): Promise<{ referenced: Set<string>; touched: Set<string> }>;
  /**
   * Deletes these narinfos of `slice` in one transaction with its audit row, only if none of them
   * was created or accessed at or after `unusedBefore` (else deletes nothing and returns false).
   */
  deleteNarInfos(
    slice: string,
    hashParts: readonly string[],
    unusedBefore: Date,
    record: DeletionRecord,
  ): Promise<boolean>;
  /**
   * A push is about to use (upload, or skip uploading) this NAR: marks it used at `at`. Returns false
   * while a collector is deleting it (the caller waits and retries; see claimNarDeletion).
   */
  touchNar(key: string, at: Date): Promise<boolean>;
  /**
   * Claims the NAR for deletion, if no narinfo uses it and no push touched it at or after
   * `unusedBefore`: forgets which slices uploaded it and marks it as being deleted, so touchNar
   * says false until finishNarDeletion. A claim older than a minute counts as abandoned.
   */
  claimNarDeletion(key: string, unusedBefore: Date, at: Date): Promise<boolean>;
  /** The blob is gone: uploads of this key may proceed. Writes the batch's audit row when given. */
  finishNarDeletion(keys: readonly string[], record?: DeletionRecord): Promise<void>;
  /** Creates the pin, or adds the paths to the pin of that name (the expiry is the new one). */
  putPin(pin: Pin): Promise<void>;
  listPins(slice?: string): Promise<Pin[]>;
  deletePin(slice: string, name: string): Promise<boolean>;
  /** Takes (or renews) the named lease for `holder` until `until`, unless another holder has it. */
  acquireLease(name: string, holder: string, until: Date, at: Date): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
  listDeletions(filter: { since?: Date; limit?: number }): Promise<DeletionRecord[]>;
}
