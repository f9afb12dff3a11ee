/**
 * Narinfo lookups for GET/HEAD and the batch route alike: the store's readable rows, the union-read
 * precedence, and a report of every conflict (a metric per lookup, a warning per store path and
 * set of slices, remembered so a job's repeated lookups do not flood the log). A lookup may be
 * narrowed to the token's write slice (`scope`, see src/http/narinfo-batch.ts).
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../http/errors.js';
import { NARINFO_LOOKUP_SCOPES, type NarInfoLookupScope } from '../../http/narinfo-batch.js';
import type { Logger } from '../log.js';
import type { ServerMetrics } from '../metrics.js';
import type { ReadRecorder } from '../retention/access.js';
import type { MetadataStore, NarInfoRecord } from '../storage/metadata-store.js';
import type { Access } from './auth.js';
import { chooseNarInfos, readableBy, type NarInfoChoice, type SliceRank } from '../union-read.js';

interface LookupDeps {
  meta: MetadataStore;
  metrics: ServerMetrics;
  log: Logger;
  reads: ReadRecorder;
}

const REPORTED_LIMIT = 10_000;
const reported = new WeakMap<LookupDeps, Set<string>>();

function reportConflict(deps: LookupDeps, choice: NarInfoChoice): void {
  deps.metrics.narinfoConflicts.inc();
  const slices = choice.conflicts.map((record) => record.slice).sort();
  const key = `${choice.record.hashPart} ${choice.record.slice} ${slices.join(' ')}`;
  let seen = reported.get(deps);
  if (!seen) reported.set(deps, (seen = new Set()));
  if (seen.has(key)) return;
  if (seen.size >= REPORTED_LIMIT) seen.clear();
  seen.add(key);
  deps.log.warn(
    { storePath: choice.record.storePath, served: choice.record.slice, conflicting: slices },
    'readable slices hold different narinfos for one store path: serving the one with precedence',
  );
}

/** The narinfos to answer, each read recorded for retention (retention/access.ts) first. */
export async function lookupNarInfos(
  deps: LookupDeps,
  access: Access,
  hashParts: readonly string[],
): Promise<Map<string, NarInfoRecord>> {
  const choose = async () =>
    chooseNarInfos(await deps.meta.findNarInfos(hashParts, access.canRead), access.rank);
  let choices = await choose();
  // A row removed by a collector between the lookup and the recording of the read: look again.
  if (!(await deps.reads.record([...choices.values()].map((choice) => choice.record))))
    choices = await choose();
  const found = new Map<string, NarInfoRecord>();
  for (const [hashPart, choice] of choices) {
    if (choice.conflicts.length > 0) reportConflict(deps, choice);
    found.set(hashPart, choice.record);
  }
  return found;
}

/** A scope as a request names it (`where` says where, for the error); absent means the union. */
export function parseLookupScope(value: unknown, where: string): NarInfoLookupScope {
  if (value === undefined || value === null) return 'union';
  if (!NARINFO_LOOKUP_SCOPES.includes(value as NarInfoLookupScope)) {
    throw new HttpError(
      400,
      `${where} ${JSON.stringify(value)?.slice(0, 40)} is not one of ${NARINFO_LOOKUP_SCOPES.map((s) => `"${s}"`).join(', ')}`,
      'bad_scope',
    );
  }
  return value as NarInfoLookupScope;
}

/** The `?scope=` of a narinfo GET/HEAD. */
export function queryLookupScope(req: IncomingMessage): NarInfoLookupScope {
  const query = new URL(req.url ?? '/', 'http://sluice.invalid').searchParams;
  return parseLookupScope(query.get('scope'), 'query parameter scope');
}

/**
 * `access` narrowed to `scope`: for "write", only the slice that ranks first because it is the
 * token's own write slice (held by this writer). Without a write slice "write" names nothing.
 */
export function scopedAccess(access: Access, scope: NarInfoLookupScope): Access {
  if (scope === 'union') return access;
  if (access.write === null) {
    const why = access.authenticated
      ? 'this cache token grants no write slice'
      : 'the request has no cache token';
    throw new HttpError(
      400,
      `lookup scope "write" asks the token's write slice, but ${why}`,
      'no_write_slice',
    );
  }
  const rank: SliceRank = (slice, owner) => (access.rank(slice, owner) === 0 ? 0 : null);
  return { ...access, rank, canRead: readableBy(rank) };
}
