/**
 * Where NAR files live. Keys are content-addressed file names (`<filehash>.nar.zst`), so a file is
 * stored once whatever slice uploaded it. The interface assumes only what S3 also offers:
 * put-if-absent of a complete object, ranged reads, head, delete, listing. No rename or append.
 */
import type { Writable } from 'node:stream';
import { parseNarFileName } from '../../nix/nar-url.js';

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
   * A chunk's buffer may be reused by the body once the next chunk is asked for.
   */
  put(key: string, body: AsyncIterable<Buffer>): Promise<'created' | 'exists'>;
  /** The object (or a range of it) opened for one read, or null when absent. */
  open(key: string, range?: ByteRange): Promise<BlobReader | null>;
  head(key: string): Promise<{ size: number } | null>;
  delete(key: string): Promise<void>;
  /**
   * Every complete NAR file (isNarBlobKey), for the collector (orphans): its key, size and when
   * it was written.
   * Keys `skip` says yes to are left out, so a store that must look each object up (files) does
   * so only for the collector's candidates.
   */
  list(skip?: (key: string) => boolean): AsyncIterable<BlobInfo>;
  /**
   * Drops uploads begun before `before` and never finished (a process killed mid-upload): S3's
   * multipart uploads, the directory's temp files. Returns how many.
   */
  abortIncompleteUploads(before: Date): Promise<number>;
}

export interface BlobInfo {
  key: string;
  size: number;
  modifiedAt: Date;
}

/** An object opened for reading: written out once, or closed unread. */
export interface BlobReader {
  /** How many bytes `writeTo` writes (the range's, or the whole blob's). */
  readonly length: number;
  /**
   * Writes the bytes into `sink` (without ending it), calling `sent` with each chunk's size once
   * `sink` has it, then closes. A chunk's buffer may be reused as soon as its write callback has
   * run, so `sink` must be done with it by then, as a socket or a hash is (a PassThrough is not).
   */
  writeTo(sink: Writable, sent?: (bytes: number) => void): Promise<void>;
  close(): Promise<void>;
}

/** Blob keys are plain file names: no separators, no dot segments, nothing to encode. */
export function isValidBlobKey(key: string): boolean {
  return /^[0-9a-z][0-9a-z.]{0,99}$/.test(key) && !key.includes('..');
}

/**
 * Whether a listed name is one Sluice stores (`<nix32 hash>.nar[.zst|.xz]`): the collector deletes
 * and aborts only those, so other objects under a bucket's prefix (another tool's, another
 * tenant's) are never taken for orphans.
 */
export function isNarBlobKey(key: string): boolean {
  return parseNarFileName(key)?.compression !== undefined;
}
