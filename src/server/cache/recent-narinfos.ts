/**
 * The recent narinfos a job's proxy is handed at start (`GET /_api/v1/narinfos/recent`): the
 * narinfos of the reader's slices that were used last (read, else pushed), newest first, so that
 * Nix's hits on what the previous jobs used are answered from the proxy's memory. A CI job mostly
 * asks for what the last run of it asked for.
 *
 * Every answer is the one a lookup of that hash part would give now: the candidates come from the
 * readable slices' newest rows, and are then looked up in the union of all readable slices with the
 * lookup's precedence. The reads are not recorded here (that would keep whatever is listed alive
 * for ever): the proxy reports the paths Nix actually read, through the batch lookup route.
 */
import { RECENT_NARINFOS_BYTES, RECENT_NARINFOS_LIMIT } from '../../contracts/narinfo-batch.js';
import type { MetadataStore, NarInfoRecord, RecentNarInfo } from '../storage/metadata-store.js';
import type { SliceEntry } from './narinfo-set-index.js';
import type { NarInfoSigner } from './narinfo-signer.js';
import { chooseNarInfos, type SliceRank } from './union-read.js';
import type { SliceFilter } from '../storage/metadata-store.js';

/**
 * Slices asked for their newest rows, those of highest precedence first: one indexed query each,
 * so a read token granted hundreds of slices costs what sixteen do.
 */
const RECENT_SLICES = 16;

/** The newest `limit` distinct hash parts of several slices' newest-first lists. */
export function newestHashParts(lists: RecentNarInfo[][], limit: number): string[] {
  const all = lists.flat().sort((a, b) => b.usedAt - a.usedAt);
  return [...new Set(all.map((entry) => entry.hashPart))].slice(0, limit);
}

/** The text a lookup answers; undefined for a stored narinfo that no longer parses (left to lookups). */
function servedText(signer: NarInfoSigner, record: NarInfoRecord): string | undefined {
  try {
    return signer.served(record);
  } catch {
    return undefined;
  }
}

/**
 * Answers kept this long per set of slices and their precedence, while no narinfo was added: jobs
 * that start together share one, and asking again and again (anonymously, for public slices)
 * costs a lookup in this map. Reads recorded meanwhile change the order only.
 */
const KEPT_MS = 5_000;
const KEPT_ANSWERS = 16;

export class RecentNarInfos {
  private readonly kept = new Map<string, { at: number; answer: Promise<Record<string, string>> }>();

  constructor(
    private readonly deps: { meta: MetadataStore; narinfoSigner: NarInfoSigner; now: () => number },
  ) {}

  /**
   * The signed narinfos to hand the reader, keyed by hash part, newest use first. `version` changes
   * whenever a narinfo was added: a kept answer is used only while it has not.
   */
  answer(
    reader: { canRead: SliceFilter; rank: SliceRank },
    readable: [string, SliceEntry][],
    version: number,
  ) {
    const slices = readable
      .map(([slice, entry]) => ({ slice, rank: reader.rank(slice, entry.owner) ?? Number.MAX_SAFE_INTEGER }))
      .sort((a, b) => a.rank - b.rank || (a.slice < b.slice ? -1 : 1));
    const key = `${version}\n${slices.map(({ slice, rank }) => `${rank} ${slice}`).join('\n')}`;
    const now = this.deps.now();
    const kept = this.kept.get(key);
    if (kept && now - kept.at < KEPT_MS) return kept.answer;
    const answer = recentNarInfos(this.deps, reader, slices.slice(0, RECENT_SLICES));
    // A failed answer is not kept: the next request asks again.
    answer.catch(() => {
      if (this.kept.get(key)?.answer === answer) this.kept.delete(key);
    });
    this.kept.delete(key);
    this.kept.set(key, { at: now, answer });
    if (this.kept.size > KEPT_ANSWERS) this.kept.delete(this.kept.keys().next().value!);
    return answer;
  }
}

async function recentNarInfos(
  deps: { meta: MetadataStore; narinfoSigner: NarInfoSigner },
  reader: { canRead: SliceFilter; rank: SliceRank },
  slices: { slice: string }[],
): Promise<Record<string, string>> {
  const lists = await Promise.all(
    slices.map(({ slice }) => deps.meta.recentNarInfos(slice, RECENT_NARINFOS_LIMIT)),
  );
  const hashParts = newestHashParts(lists, RECENT_NARINFOS_LIMIT);
  const choices = chooseNarInfos(await deps.meta.findNarInfos(hashParts, reader.canRead), reader.rank);
  const narinfos: Record<string, string> = {};
  let bytes = 0;
  for (const hashPart of hashParts) {
    const choice = choices.get(hashPart);
    // Gone since (a collector): not handed out.
    if (!choice) continue;
    const text = servedText(deps.narinfoSigner, choice.record);
    if (text === undefined) continue;
    bytes += text.length;
    if (bytes > RECENT_NARINFOS_BYTES) break;
    narinfos[hashPart] = text;
  }
  return narinfos;
}
