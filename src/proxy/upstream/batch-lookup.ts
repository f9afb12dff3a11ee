/**
 * The server's batch lookup route, `POST /_api/v1/narinfos`: one request for many narinfos. Nix's
 * lookups (routes.ts) and the push engine's "already cached?" checks (push.ts) both use it.
 */
import { NARINFO_BATCH_PATH, type NarInfoLookupScope } from '../../contracts/narinfo-batch.js';
import type { UpstreamRequest } from './upstream-client.js';

/** The request for `hashParts` (at most NARINFO_BATCH_LIMIT of them); the union unless `scope` says. */
export function narInfoBatchRequest(hashParts: string[], scope?: NarInfoLookupScope): UpstreamRequest {
  return {
    method: 'POST',
    path: NARINFO_BATCH_PATH,
    headers: { 'content-type': 'application/json' },
    body: () => JSON.stringify(scope ? { hashParts, scope } : { hashParts }),
  };
}

/** The answer, `{"narinfos": {"<hash part>": "<signed narinfo>"}}` (hits only); undefined if not that. */
export function parseNarInfoBatch(text: string): Record<string, unknown> | undefined {
  try {
    const json = JSON.parse(text) as { narinfos?: unknown } | null;
    const narinfos = json?.narinfos;
    if (typeof narinfos === 'object' && narinfos !== null && !Array.isArray(narinfos))
      return narinfos as Record<string, unknown>;
  } catch {
    // reported by the caller
  }
  return undefined;
}

/** Whether a status says the server predates the route (so the caller asks one narinfo at a time). */
export function batchRouteMissing(status: number): boolean {
  return status === 404 || status === 405;
}
