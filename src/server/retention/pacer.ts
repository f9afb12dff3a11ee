/**
 * Keeps a collection from crowding out the requests it shares the event loop with: the collector
 * calls `pause()` between small steps (a page read, a batch deleted, a file claimed). A step that
 * ran without the event loop turning (SQLite's synchronous queries) held the loop all along and
 * counts as busy; once `budgetMs` of that is spent, the collector rests `restFactor` times as long,
 * so it takes at most about 1 / (1 + restFactor) of the loop (11% by default: with 4, a fifth, the
 * benchmark's lookups ran 16–22% slower during a collection, at the edge of its 1.2× target). A step that waited
 * on I/O (files, PostgreSQL, S3) let requests run meanwhile and costs nothing. A collection runs in
 * the background every gc_interval: the lookups' speed matters more than its own (the benchmark in
 * docs/benchmarks.md measures both).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class Pacer {
  private since = performance.now();
  private busy = 0;
  private turned = false;

  constructor(
    private readonly budgetMs = 10,
    private readonly restFactor = 8,
  ) {
    this.watch();
  }

  /** Notes whether the event loop turns before the next pause (the step waited on I/O). */
  private watch(): void {
    this.turned = false;
    setImmediate(() => (this.turned = true));
  }

  async pause(): Promise<void> {
    if (!this.turned) this.busy += performance.now() - this.since;
    if (this.busy >= this.budgetMs) {
      await sleep(this.busy * this.restFactor);
      this.busy = 0;
    }
    this.since = performance.now();
    this.watch();
  }
}
