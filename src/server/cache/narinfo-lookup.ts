/**
 * Narinfo lookups for GET/HEAD and the batch route alike: the store's readable rows, the union-read
 * precedence, and a report of every conflict (a metric per lookup, a warning per store path and
 * set of slices, remembered so a job's repeated lookups do not flood the log). A lookup may be
 * narrowed to the token's write slice (`scope`: src/contracts/narinfo-batch.ts, src/server/http/lookup-scope.ts).
 */
import type { Logger } from '../server-log.js';
import type { ServerMetrics } from '../metrics.js';
import type { ReadRecorder } from '../retention/access.js';
import type { MetadataStore, NarInfoRecord } from '../storage/metadata-store.js';
import { chooseNarInfos, type NarInfoChoice, type SliceRank } from './union-read.js';
import type { SliceFilter } from '../storage/metadata-store.js';

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
  access: { canRead: SliceFilter; rank: SliceRank },
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
