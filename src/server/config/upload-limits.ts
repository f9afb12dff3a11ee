/**
 * What one upload may cost the server, besides `max_nar_size`: how far a NAR may inflate, how much
 * memory its decompressor may take, how many uploads run at once, and how long a request body may
 * sit idle. Defaults fit what `nix copy` and the Action's proxy send (see docs/server.md).
 */
import { parseCount, parseDuration, parseSize } from './units.js';

export interface UploadLimits {
  /** NAR bytes per uploaded byte, once the NAR is past 64 MiB; 0: no limit. */
  maxCompressionRatio: number;
  /** xz's `--memlimit-decompress` and the largest zstd window, in bytes. */
  maxDecompressionMemory: number;
  /** NAR uploads in progress at once, all tokens together (beyond: 503). */
  maxConcurrentUploads: number;
  /** NAR uploads in progress at once with one token (beyond: 429). */
  maxConcurrentUploadsPerToken: number;
  /** A request body that sends nothing for this long is abandoned (408). */
  bodyIdleTimeoutMs: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxCompressionRatio: 1000,
  // zstd up to level 19 (8 MiB windows; nix copy's level 3: 2 MiB), xz up to level 6 (nix copy's
  // default: 9 MiB). xz -7..-9 and zstd --long or --ultra need more and are refused.
  maxDecompressionMemory: 16 * 1024 * 1024,
  maxConcurrentUploads: 32,
  // The Action's proxy sends 4 at a time by default.
  maxConcurrentUploadsPerToken: 8,
  // The proxy's xz -T0 emits nothing until a whole block (24 MiB at level 6) is compressed.
  bodyIdleTimeoutMs: 30_000,
};

/** Config file keys → the field they set and how the value is written. */
export const UPLOAD_LIMIT_KEYS = {
  max_compression_ratio: { field: 'maxCompressionRatio', kind: 'ratio' },
  max_decompression_memory: { field: 'maxDecompressionMemory', kind: 'size' },
  max_concurrent_uploads: { field: 'maxConcurrentUploads', kind: 'count' },
  max_concurrent_uploads_per_token: { field: 'maxConcurrentUploadsPerToken', kind: 'count' },
  body_idle_timeout: { field: 'bodyIdleTimeoutMs', kind: 'milliseconds' },
} as const satisfies Record<string, { field: keyof UploadLimits; kind: string }>;

/** A value of `kind` from the config file. */
export function parseUploadLimit(
  kind: (typeof UPLOAD_LIMIT_KEYS)[keyof typeof UPLOAD_LIMIT_KEYS]['kind'],
  value: unknown,
) {
  switch (kind) {
    case 'ratio':
      return parseCount(value, 0);
    case 'size':
      return parseSize(value);
    case 'count':
      return parseCount(value);
    case 'milliseconds':
      return parseDuration(value) * 1000;
  }
}
