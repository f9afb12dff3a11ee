/**
 * The NAR keys the collector must not delete: those some narinfo points to, and those a push
 * marked within the grace window, each table read page by page (pages.ts), with a rest through the
 * pacer after each table.
 */
import type { RetentionStore } from '../storage/retention-store.js';
import type { Pacer } from './pacer.js';
import { forEachPaged, PAGE } from './pages.js';

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
  await forEachPaged(
    (after, limit) => store.listReferencedNarKeys(after, limit),
    (key) => key,
    (key) => referenced.add(key),
    pacer,
    page,
  );
  await pacer.pause();
  const touched = new Set<string>();
  await forEachPaged(
    (after, limit) => store.listNarKeyUses(after, limit),
    (use) => use.key,
    ({ key, usedAt }) => {
      if (+usedAt >= +usedSince) touched.add(key);
    },
    pacer,
    page,
  );
  await pacer.pause();
  return { referenced, touched };
}
