/**
 * A slice's rows as the collector plans with them, read page by page: a slice of 100,000 paths is
 * never one synchronous read (SQLite runs on the event loop), and lookups get their turn between
 * pages.
 */
import type { RetentionStore, StoredNarInfo } from '../storage/retention-store.js';
import { Pacer } from './pacer.js';
import { forEachPaged } from './pages.js';
import type { PathEntry } from './plan.js';

/** FileSize and References from a stored narinfo (a line scan: the collector reads every row). */
export function pathEntry(row: StoredNarInfo): PathEntry {
  let fileSize = 0;
  let references: string[] = [];
  for (const line of row.narinfo.split('\n')) {
    if (line.startsWith('FileSize: ')) fileSize = Number(line.slice(10));
    else if (line.startsWith('References: '))
      references = line
        .slice(12)
        .split(' ')
        .filter(Boolean)
        .map((name) => name.slice(0, 32));
  }
  return {
    hashPart: row.hashPart,
    storePath: row.storePath,
    narKey: row.narKey,
    fileSize,
    references,
    createdAt: +row.createdAt,
    lastAccessedAt: +row.lastAccessedAt,
  };
}

/** Every row of the slice, as plan entries. */
export async function readSlice(
  store: RetentionStore,
  slice: string,
  pacer = new Pacer(),
): Promise<PathEntry[]> {
  const entries: PathEntry[] = [];
  await forEachPaged(
    (after, limit) => store.listNarInfos(slice, after, limit),
    (row) => row.hashPart,
    (row) => entries.push(pathEntry(row)),
    pacer,
  );
  return entries;
}
