/** The daemon's counters, reported as the stats JSON of the Action ↔ daemon contract. */
import type { DaemonStats, LookupSetStats, PinReport } from '../../contracts/control-api.js';
import { PathStats } from './path-stats.js';

/** Distinct error messages kept, so a long outage cannot grow the stats without bound. */
const MAX_ERRORS = 50;

export class Stats {
  hits = 0;
  misses = 0;
  bytesDownloaded = 0;
  narsReadAhead = 0;
  narRedirects = 0;
  readonly paths = new PathStats();
  pushedPaths = 0;
  pushedBytes = 0;
  skippedAlreadyCached = 0;
  skippedUpstream = 0;
  skippedFiltered = 0;
  readonly failed: { path: string; error: string }[] = [];
  /** The narinfo set's report, when the daemon has one (pull/path-set.ts). */
  lookupSet: (() => LookupSetStats) | undefined;
  pin: PinReport | undefined;
  private readonly errors = new Map<string, number>();
  private pushMs = 0;
  private pushActiveSince: number | undefined;
  private pushActive = 0;

  constructor(
    readonly read: string[] = [],
    readonly write: string | null = null,
    /** How many paths wait to be pushed; asked of the push queue when stats are read. */
    private readonly queued: () => number = () => 0,
  ) {}

  /** Records an error message; repeats are counted, not listed again. */
  error(message: string): void {
    const count = this.errors.get(message);
    if (count !== undefined) this.errors.set(message, count + 1);
    else if (this.errors.size < MAX_ERRORS) this.errors.set(message, 1);
  }

  pushFailed(path: string, error: string): void {
    this.failed.push({ path, error });
  }

  /** Wall-clock time spent pushing: counted while at least one push is in progress. */
  pushStarted(): void {
    if (this.pushActive++ === 0) this.pushActiveSince = Date.now();
  }

  pushFinished(): void {
    if (--this.pushActive === 0 && this.pushActiveSince !== undefined) {
      this.pushMs += Date.now() - this.pushActiveSince;
      this.pushActiveSince = undefined;
    }
  }

  toJSON(): DaemonStats {
    const activeMs = this.pushActiveSince === undefined ? 0 : Date.now() - this.pushActiveSince;
    return {
      hits: this.hits,
      misses: this.misses,
      paths: this.paths.toJSON(),
      bytesDownloaded: this.bytesDownloaded,
      narsReadAhead: this.narsReadAhead,
      narRedirects: this.narRedirects,
      pushed: { paths: this.pushedPaths, bytes: this.pushedBytes },
      skipped: {
        alreadyCached: this.skippedAlreadyCached,
        upstream: this.skippedUpstream,
        filtered: this.skippedFiltered,
      },
      failed: [...this.failed],
      pushSeconds: Math.round((this.pushMs + activeMs) / 10) / 100,
      queued: this.queued(),
      read: this.read,
      write: this.write,
      ...(this.lookupSet ? { lookupSet: this.lookupSet() } : {}),
      errors: [...this.errors].map(([message, count]) =>
        count > 1 ? `${message} (${count} times)` : message,
      ),
      ...(this.pin ? { pin: this.pin } : {}),
    };
  }
}
