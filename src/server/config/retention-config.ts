/**
 * Retention settings as the config holds them (docs/retention.md), and their parsing from YAML
 * values. The parser gets the config's duration/size parsers and its `fail` (which adds
 * file:line), so it needs no Validator.
 */

export interface RetentionPolicy {
  /** Remove a path not read or pushed for this long (seconds); absent = no age limit. */
  maxAgeSeconds?: number;
  /** Evict least recently used paths while the slice's NAR files exceed this (bytes). */
  maxSizeBytes?: number;
}

export interface PullRequestSettings {
  /** A pull-request slice is removed this long after its last push (seconds). */
  ttlSeconds: number;
}

export const DEFAULT_GC_INTERVAL_SECONDS = 3600;
/** Paths read or pushed, and NAR files uploaded, this recently are never removed; also the orphans' grace. */
export const DEFAULT_GC_GRACE_SECONDS = 3600;

type Fail = (keyPath: string[], problem: string) => never;
interface Parsers {
  duration(value: unknown): number;
  size(value: unknown): number;
}

function mapping(value: unknown, keys: readonly string[], fail: Fail): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail([], 'expected a mapping');
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) fail([key], `unknown key (expected one of: ${keys.join(', ')})`);
  }
  return value as Record<string, unknown>;
}

function parsed<T>(key: string, value: unknown, parser: (value: unknown) => T, fail: Fail): T {
  try {
    return parser(value);
  } catch (error) {
    return fail([key], (error as Error).message);
  }
}

/** `{ max_age: 30d, max_size: 50GiB }` (either may be left out). */
export function parseRetention(value: unknown, parsers: Parsers, fail: Fail): RetentionPolicy {
  const raw = mapping(value, ['max_age', 'max_size'], fail);
  const policy: RetentionPolicy = {};
  if (raw.max_age !== undefined)
    policy.maxAgeSeconds = parsed('max_age', raw.max_age, parsers.duration, fail);
  if (raw.max_size !== undefined) policy.maxSizeBytes = parsed('max_size', raw.max_size, parsers.size, fail);
  return policy;
}

/** `{ ttl: 7d }`. */
export function parsePullRequests(value: unknown, parsers: Parsers, fail: Fail): PullRequestSettings {
  const raw = mapping(value, ['ttl'], fail);
  if (raw.ttl === undefined) fail([], 'needs ttl (how long a pull request slice lives after its last push)');
  return { ttlSeconds: parsed('ttl', raw.ttl, parsers.duration, fail) };
}

/** A slice's `retention` and `pull_requests` keys (`fail` takes key paths below the slice). */
export function parseSliceRetention(
  raw: Record<string, unknown>,
  parsers: Parsers,
  fail: Fail,
): { retention?: RetentionPolicy; pullRequests?: PullRequestSettings } {
  const below =
    (key: string): Fail =>
    (keys, problem) =>
      fail([key, ...keys], problem);
  return {
    ...(raw.retention !== undefined
      ? { retention: parseRetention(raw.retention, parsers, below('retention')) }
      : {}),
    ...(raw.pull_requests !== undefined
      ? { pullRequests: parsePullRequests(raw.pull_requests, parsers, below('pull_requests')) }
      : {}),
  };
}

/** The top level's `retention`, `gc_interval` and `gc_grace`: only the keys present. */
export function parseServerRetention(
  raw: Record<string, unknown>,
  parsers: Parsers,
  fail: Fail,
): { retention?: RetentionPolicy; gcIntervalSeconds?: number; gcGraceSeconds?: number } {
  const below =
    (key: string): Fail =>
    (keys, problem) =>
      fail([key, ...keys], problem);
  return {
    ...(raw.retention !== undefined
      ? { retention: parseRetention(raw.retention, parsers, below('retention')) }
      : {}),
    ...(raw.gc_interval !== undefined
      ? { gcIntervalSeconds: parsed('gc_interval', raw.gc_interval, parsers.duration, fail) }
      : {}),
    ...(raw.gc_grace !== undefined
      ? { gcGraceSeconds: parsed('gc_grace', raw.gc_grace, parsers.duration, fail) }
      : {}),
  };
}
