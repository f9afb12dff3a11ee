/**
 * The narinfo set (src/contracts/narinfo-set.ts) for a reader: the sorted 32-bit hash prefixes of
 * every narinfo in the slices it may read. The server keeps each slice's prefixes in memory (4
 * bytes a path), loaded once from the store and brought up to date by a delta query before every
 * answer, so a full answer costs a merge of the reader's slices and an encoding, both cached per
 * set of slices until something changes. Only slices the reader's filter admits contribute: a
 * slice it may not read never shows in its set.
 */
import { encodeNarInfoSet, hashPrefix, sortedUnique } from '../../contracts/narinfo-set.js';
import type { MetadataStore, SliceFilter, SliceHashParts, SliceOwner } from '../storage/metadata-store.js';

export interface SliceEntry {
  owner: SliceOwner | null;
  /** Strictly increasing. */
  prefixes: Uint32Array;
}

/** Encoded unions kept: jobs that start together mostly read the same slices. */
const CACHED_UNIONS = 8;
const HASH_PART_LENGTH = 32;

function prefixesOf(hashParts: string): Uint32Array {
  const prefixes = new Uint32Array(hashParts.length / HASH_PART_LENGTH);
  for (let i = 0; i < prefixes.length; i++) prefixes[i] = hashPrefix(hashParts, i * HASH_PART_LENGTH);
  return prefixes;
}

/** The strictly increasing union of strictly increasing arrays. */
function union(arrays: Uint32Array[]): Uint32Array {
  if (arrays.length === 1) return arrays[0]!;
  const all = new Uint32Array(arrays.reduce((sum, array) => sum + array.length, 0));
  let at = 0;
  for (const array of arrays) {
    all.set(array, at);
    at += array.length;
  }
  return sortedUnique(all);
}

export class NarInfoSetIndex {
  private readonly slices = new Map<string, SliceEntry>();
  /** The store's cursor the slices are up to date with; null before the first load. */
  private cursor: string | null = null;
  /** Bumped whenever a slice changed, so cached unions (and recent narinfos) know they are stale. */
  private changes = 0;
  private readonly unions = new Map<string, { version: number; body: Buffer; count: number }>();
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly meta: MetadataStore) {}

  /** The whole set for `canRead`, covering every narinfo committed before this call. */
  async full(canRead: SliceFilter): Promise<{ body: Buffer; count: number }> {
    const readable = await this.readable(canRead);
    const key = readable.map(([slice]) => slice).join('\n');
    const cached = this.unions.get(key);
    if (cached?.version === this.changes) return cached;
    const prefixes = union(readable.map(([, entry]) => entry.prefixes));
    const answer = {
      version: this.changes,
      body: encodeNarInfoSet({ cursor: this.cursor ?? '0', full: true, prefixes }),
      count: prefixes.length,
    };
    this.unions.delete(key);
    this.unions.set(key, answer);
    if (this.unions.size > CACHED_UNIONS) this.unions.delete(this.unions.keys().next().value!);
    return answer;
  }

  /** Changes whenever a narinfo was added (as of the last refresh). */
  get version(): number {
    return this.changes;
  }

  /** The slices holding narinfos that `canRead` admits, by name, as of now. */
  async readable(canRead: SliceFilter): Promise<[string, SliceEntry][]> {
    await this.refresh();
    return [...this.slices.entries()]
      .filter(([slice, entry]) => entry.prefixes.length > 0 && canRead(slice, entry.owner))
      .sort(([a], [b]) => (a < b ? -1 : 1));
  }

  /** What `canRead` gained since `cursor`, asked of the store directly (small, and exact for any cursor). */
  async since(canRead: SliceFilter, cursor: string): Promise<{ body: Buffer; count: number }> {
    const answer = await this.meta.narInfoHashParts(cursor);
    const readable = answer.slices.filter(({ slice, owner }) => canRead(slice, owner));
    const prefixes = union(readable.map(({ hashParts }) => sortedUnique(prefixesOf(hashParts))));
    return {
      body: encodeNarInfoSet({ cursor: answer.cursor, full: false, prefixes }),
      count: prefixes.length,
    };
  }

  /**
   * Brings the slices up to date with a snapshot taken after this call: a refresh already running
   * may have taken its snapshot before, so one more is queued after it (shared by all who wait).
   */
  private refresh(): Promise<void> {
    if (!this.running) return this.start();
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.start();
      });
    return this.next;
  }

  private start(): Promise<void> {
    const run = this.load().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private async load(): Promise<void> {
    const answer = await this.meta.narInfoHashParts(this.cursor);
    for (const part of answer.slices) this.apply(part);
    if (answer.slices.length > 0) this.changes++;
    this.cursor = answer.cursor;
  }

  private apply({ slice, owner, hashParts }: SliceHashParts): void {
    const added = sortedUnique(prefixesOf(hashParts));
    const entry = this.slices.get(slice);
    if (!entry) this.slices.set(slice, { owner, prefixes: added });
    else {
      entry.owner = owner;
      entry.prefixes = union([entry.prefixes, added]);
    }
  }
}
