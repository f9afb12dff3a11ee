/**
 * GitHub cache mode's contract between the daemon and the post step: the pack's files as
 * @actions/cache saves and restores them, and what the daemon answers to `POST /_sluice/pack`.
 */
import type { DaemonStats } from './control-api.js';

export const PACK_DIR = 'sluice-pack';
export const PACK_INDEX = 'index.json';
export const PACK_NARS = 'nars.zst';
/** The paths given to @actions/cache, as written: the cache version is a hash of this exact text. */
export const PACK_CACHE_PATHS = [`${PACK_DIR}/${PACK_INDEX}`, `${PACK_DIR}/${PACK_NARS}`];

export interface RestoreReport {
  /** 'restored': a pack was found and read; 'none': no pack for these keys; 'failed': see error. */
  outcome: 'pending' | 'restored' | 'none' | 'failed';
  key?: string;
  paths?: number;
  /** Compressed bytes of the restored pack. */
  bytes?: number;
  /** From the start of the restore until the pack's index was read (lookups waited this long). */
  indexSeconds?: number;
  /** The whole restore: download and @actions/cache's extraction. */
  seconds?: number;
  error?: string;
  /** Set when a NAR failed its NarHash check: nothing more of the pack was served. */
  corrupt?: string;
}

export interface NewPackReport {
  stats: DaemonStats;
  restore: RestoreReport;
  /** Paths (and compressed bytes) Nix took from the restored pack. */
  used: { paths: number; bytes: number };
  /** Store paths reported as built or new in the store. */
  built: number;
  /** The planned pack, when something new was built. */
  plan?: {
    paths: number;
    narBytes: number;
    added: number;
    dropped: number;
    filtered: number;
    upstream: number;
  };
  /** Written and ready to save from `root` (@actions/cache's cwd). */
  written?: { root: string; paths: number; bytes: number };
  /** Why no pack was written. */
  reason?: string;
}
