/**
 * The NAR keys the collector must not delete: those some narinfo points to, and those a push
 * marked within the grace window. Read page by page in key order (keyset paging), resting through
 * the pacer between pages: a cache of 100,000 NARs is never one statement holding the store (or,
 * for SQLite, the event loop that answers lookups).
 */
import type { RetentionStore } from '../storage/retention-store.js';
import type { Pacer } from './pacer.js';

const PAGE = 2000;

export interface NarKeysInUse {
  referenced: Set<string>;
  touched: Set<string>;
}

export async function narKeysInUse(
  store: RetentionStore,
  usedSince: Date,
  pacer: Pacer,
  page = PAGE,
): Promise<NarKeysInUse> {
  const referenced = new Set<string>();
  for (let after = ''; ;) {
    const keys = await store.listReferencedNarKeys(after, page);
    for (const key of keys) referenced.add(key);
    await pacer.pause();
    if (keys.length < page) break;
    after = keys[keys.length - 1]!;
  }
  const touched = new Set<string>();
  for (let after = ''; ;) {
    const uses = await store.listNarKeyUses(after, page);
    for (const { key, usedAt } of uses) if (+usedAt >= +usedSince) touched.add(key);
    await pacer.pause();
    if (uses.length < page) break;
    after = uses[uses.length - 1]!.key;
  }
  return { referenced, touched };
}
