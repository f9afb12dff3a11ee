/**
 * The daemon's control routes on loopback, as the Action's steps, the post-build hook and the
 * benchmark call them; everything else the daemon serves is the binary cache protocol for Nix.
 */

export const CONTROL_PREFIX = '/_sluice/';

export const ControlRoute = {
  /** `GET` → DaemonHealth. */
  Health: 'health',
  /** `GET` → DaemonStats. */
  Stats: 'stats',
  /** `POST` BuiltRequest → 202 `{ pushing }`, at once. */
  Built: 'built',
  /** `POST` DrainRequest → DaemonStats, by the deadline. */
  Drain: 'drain',
  /** GitHub cache mode: `POST` `{ paths, maxBytes }` → NewPackReport (contracts/pack-api.ts). */
  Pack: 'pack',
  /** `POST` → `{ shuttingDown: true }`, then the daemon exits. */
  Shutdown: 'shutdown',
} as const;
export type ControlRoute = (typeof ControlRoute)[keyof typeof ControlRoute];

export function controlPath(route: ControlRoute): string {
  return `${CONTROL_PREFIX}${route}`;
}

/** The post-build hook's report; `outPaths` empty → the daemon resolves `drvPath` (Nix 2.8 bug #6446). */
export interface BuiltRequest {
  drvPath?: string;
  outPaths?: string[];
}

export interface DrainRequest {
  deadlineSeconds: number;
  /** Store paths to queue as well (the post step's store diff). */
  paths?: string[];
}

/** Drain deadlines above this are refused. */
export const MAX_DRAIN_DEADLINE_SECONDS = 6 * 3600;

export interface DaemonHealth {
  ok: true;
  pid: number;
  port: number;
  pushing: boolean;
  /** ISO 8601, null without a token. */
  tokenExpiresAt: string | null;
  memory: NodeJS.MemoryUsage;
}

export interface PathSize {
  path: string;
  /** The NAR file's size (compressed, as transferred). */
  bytes: number;
}

/** The job's cache use in distinct store paths (src/proxy/report/path-stats.ts). */
export interface PathStatsJson {
  found: number;
  notFound: number;
  downloaded: number;
  downloadedBytes: number;
  largestDownloaded: PathSize[];
  largestPushed: PathSize[];
}

/** The daemon's counters: `GET /_sluice/stats` and the answer to a drain. */
export interface DaemonStats {
  /** Narinfo lookups answered / not answered (Nix looks a path up more than once). */
  hits: number;
  misses: number;
  /** The same in distinct store paths, what was downloaded, the largest paths. */
  paths: PathStatsJson;
  bytesDownloaded: number;
  /** NARs handed to Nix from the readahead rather than streamed on request. */
  narsReadAhead: number;
  /** NAR reads the server redirected to its bucket: Nix fetched those bytes from there. */
  narRedirects: number;
  pushed: { paths: number; bytes: number };
  skipped: { alreadyCached: number; upstream: number; filtered: number };
  failed: { path: string; error: string }[];
  pushSeconds: number;
  queued: number;
  read: string[];
  write: string | null;
  /** The narinfo set the daemon answers misses from (absent in GitHub cache mode). */
  lookupSet?: LookupSetStats;
  errors: string[];
  /** With the Action's `pin` input: what the drain pinned. */
  pin?: PinReport;
}

/** What the daemon pinned for the Action's `pin` input (paths: each kept with its closure). */
export interface PinReport {
  name: string;
  paths: number;
  error?: string;
}

export interface LookupSetStats {
  state: 'loading' | 'loaded' | 'failed' | 'unsupported';
  /** Hash prefixes held, and the size of the set as fetched. */
  prefixes: number;
  bytes: number;
  loadSeconds: number;
  /** Deltas fetched since. */
  deltas: number;
  /** Lookups answered "not in the cache" from the set alone. */
  absent: number;
  /** Narinfos fetched ahead of Nix (references of its hits), and how many Nix then asked for. */
  prefetched: number;
  prefetchServed: number;
  /** The recent narinfos (src/proxy/pull/recent-narinfos.ts). */
  recent?: RecentNarInfoStats;
  /** Batch lookups answered over the narinfo stream (src/proxy/upstream/narinfo-stream.ts). */
  streamed?: number;
}

export interface RecentNarInfoStats {
  state: 'loading' | 'loaded' | 'failed' | 'unsupported';
  /** Narinfos held now, and the size of the answer as fetched. */
  held: number;
  bytes: number;
  loadSeconds: number;
  /** Lookups answered from them; reads reported to the server; paths dropped as gone there. */
  served: number;
  reported: number;
  dropped: number;
}
