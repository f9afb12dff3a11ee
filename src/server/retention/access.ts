/**
 * Records reads for `max_age` without a write per lookup: a row's access time is written only
 * when the stored one is older than a quarter of the grace window, all stale rows of a lookup in
 * one statement. So a path read within the grace window always has an access time younger than
 * the window, which is what keeps it from the collector, and busy paths cost a write per
 * quarter-window rather than per GET.
 */
import type { NarInfoRecord } from '../storage/metadata-store.js';
import type { RetentionStore } from '../storage/retention-store.js';

export class ReadRecorder {
  constructor(
    private readonly store: RetentionStore,
    private readonly now: () => number,
    private readonly refreshMs: number,
  ) {}

  /**
   * Records the reads of these rows before they are answered; false when one of them was deleted
   * meanwhile (by a collector), so the caller looks it up again rather than serve a removed path.
   */
  async record(records: Iterable<NarInfoRecord>): Promise<boolean> {
    const now = this.now();
    const stale = [...records].filter(
      (record) => +(record.lastAccessedAt ?? record.createdAt) < now - this.refreshMs,
    );
    if (stale.length === 0) return true;
    const found = await this.store.touchNarInfos(stale, new Date(now));
    return found === stale.length;
  }
}
