/** Which retention applies to a stored slice, and the names of pull-request slices. */
import type { Config } from '../config.js';
import { globMatches, isTemplate, normalizeSliceName, sliceMatches } from '../exchange/slice-names.js';
import type { RetentionPolicy } from './settings.js';

const PULL_REQUEST_SLICE = /^(.+)\/pr-(\d+)$/;

/** `<slice>/pr-<number>`: written by that pull request's jobs, read by them only. */
export function pullRequestSlice(base: string, number: string): string {
  return `${base}/pr-${number}`;
}

export function isPullRequestSlice(name: string): boolean {
  return PULL_REQUEST_SLICE.test(name);
}

/**
 * Whether a read grant (or a public pattern) covers `slice`. A pull-request slice only by its exact
 * name, which only that pull request's tokens carry: `acme/*` must not reach into `acme/app/pr-7`.
 */
export function readCovers(pattern: string, slice: string): boolean {
  return isPullRequestSlice(slice) ? normalizeSliceName(pattern) === slice : sliceMatches(pattern, slice);
}

export interface SliceRetention {
  policy: RetentionPolicy;
  pullRequestTtlSeconds?: number;
}

/**
 * The first configured slice whose name matches (a template such as `${repository}` matches any
 * name of its shape, `*` any run) gives the retention; else the server-wide one. A pull-request
 * slice follows the slice it belongs to, plus its TTL.
 */
export function retentionFor(config: Config, slice: string): SliceRetention {
  const pr = PULL_REQUEST_SLICE.exec(slice);
  if (pr) {
    const base = config.slices?.find((entry) => entry.pullRequests && entry.name === pr[1]);
    if (base?.pullRequests)
      return {
        policy: base.retention ?? config.retention,
        pullRequestTtlSeconds: base.pullRequests.ttlSeconds,
      };
  }
  const entry = config.slices?.find((candidate) => {
    const glob = isTemplate(candidate.name)
      ? candidate.name.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, '*')
      : candidate.name;
    return globMatches(normalizeSliceName(glob), slice);
  });
  return { policy: entry?.retention ?? config.retention };
}
