/**
 * Reading the union of slices: which slices a token may read, in which order of precedence, and
 * which narinfo answers when several readable slices hold one for the same store path. Kept apart
 * from every MetadataStore, so SQLite and PostgreSQL answer alike: the stores return the readable
 * rows, this module chooses.
 *
 * Precedence: the token's own write slice; then its read grants in the order the policy lists
 * them; then public slices; between slices of equal rank, the slice name. Never age: a writer must
 * not be able to replace another's path by being first (or last).
 */
import type { CacheGrant, CiIdentity, OwnerRequirement } from '../exchange/index.js';
import { readCovers } from '../slices/pull-request-slices.js';
import type { NarInfoRecord, SliceFilter, SliceOwner } from '../storage/metadata-store.js';

/** A slice's rank for a reader: lower answers first; null when the reader may not read it. */
export type SliceRank = (slice: string, owner: SliceOwner | null) => number | null;

/** Whether a slice's binding satisfies a read grant that came from a template. */
export function ownerMatches(owner: SliceOwner | null, required: OwnerRequirement): boolean {
  if (owner === null || owner.issuer !== required.issuer) return false;
  if (required.repositoryId !== undefined && owner.repositoryId !== required.repositoryId) return false;
  return required.repositoryOwnerId === undefined || owner.repositoryOwnerId === required.repositoryOwnerId;
}

/** The ranking of one cache token's grant (public slices come after everything it was granted). */
export function grantRanking(grant: CacheGrant): SliceRank {
  const identity = grant.identity as CiIdentity;
  const writeOwner: OwnerRequirement | null = grant.bindWrite
    ? { issuer: identity.issuer, ...(identity.repository_id ? { repositoryId: identity.repository_id } : {}) }
    : null;
  return (slice, owner) => {
    if (slice === grant.write && (writeOwner === null || ownerMatches(owner, writeOwner))) return 0;
    for (const [index, pattern] of grant.read.entries()) {
      const required = grant.readOwners?.[index] ?? null;
      if (readCovers(pattern, slice) && (required === null || ownerMatches(owner, required)))
        return index + 1;
    }
    return null;
  };
}

/** `ranking`, then the public slices after it. */
export function withPublicSlices(ranking: SliceRank, isPublic: (slice: string) => boolean): SliceRank {
  return (slice, owner) => ranking(slice, owner) ?? (isPublic(slice) ? Number.MAX_SAFE_INTEGER : null);
}

export const readableBy =
  (rank: SliceRank): SliceFilter =>
  (slice, owner) =>
    rank(slice, owner) !== null;

/** What answers one store path: the chosen narinfo, and the readable ones with other contents. */
export interface NarInfoChoice {
  record: NarInfoRecord;
  /** Narinfos of other slices whose NarHash differs: a conflict to report, not to serve. */
  conflicts: NarInfoRecord[];
}

const narHashOf = (record: NarInfoRecord): string => /^NarHash: (\S+)$/m.exec(record.narinfo)?.[1] ?? '';

/** Picks, per hash part, the narinfo of the highest-precedence slice among `records`. */
export function chooseNarInfos(
  records: readonly NarInfoRecord[],
  rank: SliceRank,
): Map<string, NarInfoChoice> {
  const ranked = records
    .map((record) => ({ record, rank: rank(record.slice, record.owner ?? null) }))
    .filter((entry): entry is { record: NarInfoRecord; rank: number } => entry.rank !== null)
    .sort((a, b) => a.rank - b.rank || (a.record.slice < b.record.slice ? -1 : 1));
  const chosen = new Map<string, NarInfoChoice>();
  for (const { record } of ranked) {
    const earlier = chosen.get(record.hashPart);
    if (!earlier) chosen.set(record.hashPart, { record, conflicts: [] });
    else if (narHashOf(record) !== narHashOf(earlier.record)) earlier.conflicts.push(record);
  }
  return chosen;
}
