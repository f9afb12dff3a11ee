/** Which retention applies to a stored slice (pull-request slices follow the slice they belong to). */
import type { Config } from '../config/config-schema.js';
import type { RetentionPolicy } from '../config/retention-config.js';
import { pullRequestBase } from '../slices/pull-request-slices.js';
import { globMatches, isTemplate, normalizeSliceName } from '../slices/slice-names.js';

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
  const base = pullRequestBase(slice);
  if (base !== undefined) {
    const entry = config.slices?.find((candidate) => candidate.pullRequests && candidate.name === base);
    if (entry?.pullRequests)
      return {
        policy: entry.retention ?? config.retention,
        pullRequestTtlSeconds: entry.pullRequests.ttlSeconds,
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
