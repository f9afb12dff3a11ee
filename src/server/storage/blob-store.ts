/**
 * Where NAR files live. Keys are content-addressed file names (`<filehash>.nar.zst`), so a file is
 * stored once whatever slice uploaded it. The interface assumes only what S3 also offers:
 * put-if-absent of a complete object, ranged reads, head, delete. No rename or append.
 */
import type { Readable } from 'node:stream';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface BlobStore {
  /**
   * Streams `body` under `key` unless the key already exists. The object becomes visible only once
   * complete and durable; if `body` errors (a failed check, a dropped connection) nothing is left.
   * The body is always read to its end, so a check at its end runs even for an existing key.
   */
  put(key: string, body: Readable): Promise<'created' | 'exists'>;
  /** The object's bytes (or a range of them), or null when absent. */
  get(key: string, range?: ByteRange): Promise<Readable | null>;
  head(key: string): Promise<{ size: number } | null>;
  delete(key: string): Promise<void>;
}

/** Blob keys are plain file names: no separators, no dot segments, nothing to encode. */
export function isValidBlobKey(key: string): boolean {
  return /^[0-9a-z][0-9a-z.]{0,99}$/.test(key) && !key.includes('..');
}
