/**
 * The config keys for where the server keeps things: `storage.blobs` (files under the data
 * directory, or an S3-compatible bucket), `database` (SQLite under the data directory, or a
 * PostgreSQL URL; `SLUICE_DATABASE_URL` overrides it) and `keys` (key files shared by replicas).
 */

export interface FsBlobsConfig {
  type: 'fs';
  /**
   * Behind nginx: plain NAR GETs that nginx marks (ACCEL_REQUEST_HEADER, contracts/server-api.ts)
   * are answered with `X-Accel-Redirect: <this prefix><file>` after the usual checks, and nginx
   * sends the file: no byte passes through the server's process.
   */
  xAccelRedirect?: string;
}

export interface S3BlobsConfig {
  type: 's3';
  bucket: string;
  /** Absent for AWS S3 itself. */
  endpoint?: string;
  region: string;
  prefix: string;
  forcePathStyle: boolean;
  /** NAR GETs answer with a redirect to a presigned URL instead of the bytes. */
  presignedDownloads: boolean;
  /** Lifetime of a presigned URL. */
  presignTtlSeconds: number;
  partSize: number;
  /** Bytes of part buffers all uploads together may hold; uploads wait for room beyond it. */
  partBuffers: number;
  /** Multipart uploads older than this (left by a killed replica) are aborted at start. */
  abortIncompleteAfterSeconds: number;
}

export type BlobsConfig = FsBlobsConfig | S3BlobsConfig;

export interface KeysConfig {
  /** The narinfo signing key (`nix-store --generate-binary-cache-key` format). */
  signingKeyFile?: string;
  /** The ed25519 PEM key that signs cache tokens. */
  tokenKeyFile?: string;
}

/** Where `database` came from, to name it in errors: the file's key or the environment. */
export type DatabaseSource = 'database' | 'SLUICE_DATABASE_URL';

export interface DatabaseConfig {
  url: string;
  source: DatabaseSource;
}

/** What config.ts's validator offers (structurally; no import of config.ts, so no import circle). */
interface Reader {
  fail(path: (string | number)[], problem: string, atKey?: boolean): never;
  parse<T>(path: (string | number)[], value: unknown, parser: (value: unknown) => T): T;
  object(path: (string | number)[], value: unknown, known: readonly string[]): Record<string, unknown>;
  string(path: (string | number)[], value: unknown): string;
  boolean(path: (string | number)[], value: unknown): boolean;
  url(path: (string | number)[], value: unknown, allowHttp: boolean): string;
}

type Parser = (value: unknown) => number;

export const DEFAULT_PART_SIZE = 16 * 1024 ** 2;
/**
 * Without a configured `part_buffers`: four default parts (with a server's own ~130 MB, one process
 * stays within 200 MB of RSS), or one upload's two if parts are larger.
 */
export function defaultPartBuffers(partSize: number): number {
  return Math.max(64 * 1024 ** 2, 2 * partSize);
}
const MIN_PART_SIZE = 5 * 1024 ** 2;
const MAX_PRESIGN_TTL_SECONDS = 7 * 24 * 3600;

const S3_KEYS = [
  'type',
  'bucket',
  'endpoint',
  'region',
  'prefix',
  'force_path_style',
  'presigned_downloads',
  'presign_ttl',
  'part_size',
  'part_buffers',
  'abort_incomplete_after',
] as const;
const FS_KEYS = ['type', 'x_accel_redirect'] as const;

export function parseStorage(
  v: Reader,
  value: unknown,
  parseSize: Parser,
  parseDuration: Parser,
): BlobsConfig {
  const storage = v.object(['storage'], value, ['blobs']);
  if (storage.blobs === undefined) return { type: 'fs' };
  const path = ['storage', 'blobs'];
  const raw = v.object(path, storage.blobs, [...S3_KEYS, ...FS_KEYS]);
  const type = raw.type === undefined ? 'fs' : v.string([...path, 'type'], raw.type);
  if (type === 'fs') {
    const extra = Object.keys(raw).find((key) => !(FS_KEYS as readonly string[]).includes(key));
    if (extra) v.fail([...path, extra], `only applies to type: s3`, true);
    if (raw.x_accel_redirect === undefined) return { type: 'fs' };
    const prefix = v.string([...path, 'x_accel_redirect'], raw.x_accel_redirect);
    // Only what an nginx location prefix needs: no `..` (no segment starts with a dot), query,
    // spaces or bytes that would break the header.
    if (!/^(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)+\/$/.test(prefix))
      v.fail(
        [...path, 'x_accel_redirect'],
        `${JSON.stringify(prefix.slice(0, 100))} is not an nginx location prefix such as /_sluice_nars/ (letters, digits, '.', '_', '-' between slashes; starting and ending with '/')`,
      );
    return { type: 'fs', xAccelRedirect: prefix };
  }
  if (type !== 's3') v.fail([...path, 'type'], `unknown type '${type}' (expected fs or s3)`);
  if (raw.x_accel_redirect !== undefined)
    v.fail([...path, 'x_accel_redirect'], 'only applies to type: fs', true);
  const optional = <T>(key: string, parse: (value: unknown) => T, fallback: T): T =>
    raw[key] === undefined ? fallback : parse(raw[key]);
  const bucket = v.string([...path, 'bucket'], raw.bucket);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    v.fail([...path, 'bucket'], `'${bucket}' is not an S3 bucket name`);
  const partSize = optional(
    'part_size',
    (x) => v.parse([...path, 'part_size'], x, parseSize),
    DEFAULT_PART_SIZE,
  );
  if (partSize < MIN_PART_SIZE) v.fail([...path, 'part_size'], 'must be at least 5MiB (the S3 minimum)');
  const partBuffers = optional(
    'part_buffers',
    (x) => v.parse([...path, 'part_buffers'], x, parseSize),
    defaultPartBuffers(partSize),
  );
  if (partBuffers < partSize)
    v.fail([...path, 'part_buffers'], `must hold at least one part (part_size is ${partSize} bytes)`);
  const presignTtlSeconds = optional(
    'presign_ttl',
    (x) => v.parse([...path, 'presign_ttl'], x, parseDuration),
    300,
  );
  if (presignTtlSeconds > MAX_PRESIGN_TTL_SECONDS)
    v.fail([...path, 'presign_ttl'], 'must be at most 7d (the longest a SigV4 presigned URL lives)');
  const endpoint = optional<string | undefined>(
    'endpoint',
    (x) => v.url([...path, 'endpoint'], x, true).replace(/\/+$/, ''),
    undefined,
  );
  return {
    type: 's3',
    bucket,
    ...(endpoint ? { endpoint } : {}),
    region: optional(
      'region',
      (x) => v.string([...path, 'region'], x),
      process.env.AWS_REGION || 'us-east-1',
    ),
    prefix: optional('prefix', (x) => (x === '' ? '' : v.string([...path, 'prefix'], x)), ''),
    forcePathStyle: optional('force_path_style', (x) => v.boolean([...path, 'force_path_style'], x), false),
    presignedDownloads: optional(
      'presigned_downloads',
      (x) => v.boolean([...path, 'presigned_downloads'], x),
      false,
    ),
    presignTtlSeconds,
    partSize,
    partBuffers,
    abortIncompleteAfterSeconds: optional(
      'abort_incomplete_after',
      (x) => v.parse([...path, 'abort_incomplete_after'], x, parseDuration),
      24 * 3600,
    ),
  };
}

/** A PostgreSQL URL; the problem is named without echoing the value (it may hold a password). */
export function databaseUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a URL (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    return `must be a postgres:// URL, not ${url.protocol}// (omit it to keep SQLite under the data directory)`;
  if (!url.hostname) return 'names no host (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
  return undefined;
}

export function parseDatabase(v: Reader, value: unknown): DatabaseConfig {
  const url = v.string(['database'], value);
  const problem = databaseUrlProblem(url);
  if (problem) v.fail(['database'], problem);
  return { url, source: 'database' };
}

export function parseKeys(v: Reader, value: unknown): KeysConfig {
  const raw = v.object(['keys'], value, ['signing_key_file', 'token_key_file']);
  return {
    ...(raw.signing_key_file === undefined
      ? {}
      : { signingKeyFile: v.string(['keys', 'signing_key_file'], raw.signing_key_file) }),
    ...(raw.token_key_file === undefined
      ? {}
      : { tokenKeyFile: v.string(['keys', 'token_key_file'], raw.token_key_file) }),
  };
}
