/** GitHub cache mode's sink for reported builds: the roots of the next pack, with when each was built. */
import type { Logger } from '../report/daemon-log.js';
import type { Stats } from '../report/stats.js';
import type { LocalStore } from '../push/local-store.js';
import type { BuiltPaths } from '../push/built-paths.js';

export class BuiltCollector implements BuiltPaths {
  /** Store path → when it was first reported. */
  readonly roots = new Map<string, number>();
  private resolving = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly store: LocalStore,
    private readonly stats: Stats,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get queued(): number {
    return this.resolving;
  }

  get isIdle(): boolean {
    return this.resolving === 0;
  }

  enqueue(paths: string[]): void {
    const at = this.now();
    for (const path of paths) if (!path.endsWith('.drv') && !this.roots.has(path)) this.roots.set(path, at);
  }

  async enqueueOutputsOf(drvPath: string): Promise<void> {
    this.resolving++;
    try {
      this.enqueue(await this.store.derivationOutputs(drvPath));
    } catch (e) {
      const message = `cannot find the outputs of ${drvPath}: ${(e as Error).message}`;
      this.stats.error(message);
      this.log.warn({ err: message }, 'built path report ignored');
    } finally {
      if (--this.resolving === 0) {
        const waiters = this.waiters;
        this.waiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }

  idle(): Promise<void> {
    return this.isIdle ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
