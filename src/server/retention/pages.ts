/**
 * A table of the retention store read in key order, a page at a time (keyset paging), resting
 * through the pacer between pages: a cache of 100,000 rows is never one statement holding the
 * store (or, for SQLite, the event loop that answers lookups).
 */
import type { Pacer } from './pacer.js';

export const PAGE = 2000;

/** Calls `each` for every row `readPage` gives, page after page, until a page comes back short. */
export async function forEachPaged<T>(
  readPage: (after: string, limit: number) => Promise<T[]>,
  keyOf: (row: T) => string,
  each: (row: T) => void,
  pacer: Pacer,
  limit = PAGE,
): Promise<void> {
  for (let after = ''; ;) {
    const rows = await readPage(after, limit);
    for (const row of rows) each(row);
    if (rows.length < limit) return;
    after = keyOf(rows[rows.length - 1]!);
    await pacer.pause();
  }
}
