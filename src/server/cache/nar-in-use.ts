/**
 * A push that uses a NAR (uploads it, or skips uploading it because the slice has it) marks it used
 * first, so a collector running at that moment leaves it alone; while a collector is deleting that
 * very file, the push waits for it to finish and then uploads the NAR again (docs/retention.md,
 * "Safety under concurrency").
 */
import { HttpError } from '../../contracts/http-error.js';
import type { MetadataStore } from '../storage/metadata-store.js';

/** How long an upload waits for a collector to finish deleting the same NAR file (a few ms normally). */
const DELETION_WAIT_MS = 10_000;
const POLL_MS = 20;

/** Marks the NAR as used by this upload; while a collector is deleting that key, waits for it. */
export async function markNarInUse(meta: MetadataStore, key: string, now: () => number): Promise<void> {
  const started = Date.now();
  while (!(await meta.touchNar(key, new Date(now())))) {
    if (Date.now() - started > DELETION_WAIT_MS)
      throw new HttpError(503, `NAR ${key} is being deleted by the collector: retry`, 'nar_deleting', {
        'retry-after': '1',
      });
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
