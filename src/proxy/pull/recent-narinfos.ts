/**
 * The narinfos the job's readable slices used last (src/server/cache/recent-narinfos.ts), fetched
 * once at start in the background, so that Nix's hits on what earlier jobs used are answered from
 * memory as its misses are (by the narinfo set), without a request to the server each.
 *
 * What the server handed out is what a lookup would have answered then. It is trusted for
 * `trustMs`, and dropped for a path this job pushes (the job's own slice answers first). Reads
 * answered from here never reach the server, and retention ages paths by their reads: so the paths
 * Nix read are reported every `reportEveryMs` (and at close) through the batch lookup route, which
 * records reads as any lookup does. A path the server no longer has is dropped when reported.
 */
import {
  NARINFO_BATCH_LIMIT,
  RECENT_NARINFOS_BYTES,
  RECENT_NARINFOS_PATH,
} from '../../contracts/narinfo-batch.js';
import type { RecentNarInfoStats } from '../../contracts/control-api.js';
import { HASH_PART_PATTERN } from '../../nix/store-path.js';
import type { Logger } from '../report/daemon-log.js';
import { batchRouteMissing, narInfoBatchRequest, parseNarInfoBatch } from '../upstream/batch-lookup.js';
import type { Clock } from '../upstream/clock.js';
import { describeNetworkError, type Upstream } from '../upstream/upstream-client.js';
import { PULL_RETRY } from '../upstream/retry.js';

export interface RecentOptions {
  /** How long after the fetch the narinfos answer Nix; after it, lookups ask the server again. */
  trustMs: number;
  reportEveryMs: number;
  timeoutMs: number;
}

export const RECENT_DEFAULTS: RecentOptions = {
  trustMs: 10 * 60_000,
  reportEveryMs: 2_000,
  timeoutMs: 30_000,
};

const CLOSE_WAIT_MS = 5_000;

export class RecentNarInfos {
  private narinfos = new Map<string, string>();
  private fetchedAt = -Infinity;
  /** Hash parts Nix read from here, not yet reported. */
  private readonly unreported = new Set<string>();
  private cancelReport: (() => void) | undefined;
  private reporting: Promise<void> = Promise.resolve();
  private loading: Promise<void> | undefined;
  private readonly report: RecentNarInfoStats = {
    state: 'loading',
    held: 0,
    bytes: 0,
    loadSeconds: 0,
    served: 0,
    reported: 0,
    dropped: 0,
  };

  constructor(
    private readonly server: Upstream,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: RecentOptions = RECENT_DEFAULTS,
  ) {}

  /** Starts the fetch (lookups do not wait for it). */
  start(): void {
    this.loading ??= this.load();
  }

  /** Whether a narinfo for the path is held and still trusted. */
  has(hashPart: string): boolean {
    return this.trusted() && this.narinfos.has(hashPart);
  }

  /** The narinfo to answer Nix with, if held and still trusted; its read will be reported. */
  take(hashPart: string): string | undefined {
    if (!this.trusted()) return undefined;
    const narinfo = this.narinfos.get(hashPart);
    if (narinfo === undefined) return undefined;
    this.report.served++;
    this.unreported.add(hashPart);
    if (this.unreported.size >= NARINFO_BATCH_LIMIT) this.flush();
    else this.cancelReport ??= this.clock.setTimer(() => this.flush(), this.options.reportEveryMs);
    return narinfo;
  }

  /** This job pushed the path: its own slice answers now, so the server is asked. */
  forget(hashPart: string): void {
    this.narinfos.delete(hashPart);
  }

  /**
   * Reports what is left to report, for the daemon's shutdown: waiting `CLOSE_WAIT_MS` at most, so
   * a server that does not answer cannot hold the post step (the reads are then lost to retention).
   */
  async close(): Promise<void> {
    this.flush();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.reporting,
      new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS).unref())),
    ]);
    clearTimeout(timer);
  }

  toJSON(): RecentNarInfoStats {
    return { ...this.report, held: this.narinfos.size };
  }

  private trusted(): boolean {
    if (this.narinfos.size === 0) return false;
    if (this.clock.now() - this.fetchedAt <= this.options.trustMs) return true;
    this.narinfos = new Map();
    return false;
  }

  /** Sends the reads noted so far, after any report still under way (one at a time). */
  private flush(): void {
    this.cancelReport?.();
    this.cancelReport = undefined;
    if (this.unreported.size === 0) return;
    const hashParts = [...this.unreported];
    this.unreported.clear();
    this.reporting = this.reporting.then(async () => {
      for (let i = 0; i < hashParts.length; i += NARINFO_BATCH_LIMIT)
        await this.reportReads(hashParts.slice(i, i + NARINFO_BATCH_LIMIT));
    });
  }

  /** One batch lookup of paths Nix read: the server records the reads; what it lacks now is dropped. */
  private async reportReads(hashParts: string[]): Promise<void> {
    try {
      const response = await this.server.requestText({
        ...narInfoBatchRequest(hashParts),
        retry: PULL_RETRY,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      const answer = response.statusCode === 200 ? parseNarInfoBatch(response.text) : undefined;
      if (!answer) {
        this.log.warn(
          { status: response.statusCode, paths: hashParts.length },
          'recent narinfo reads not reported',
        );
        return;
      }
      this.report.reported += hashParts.length;
      for (const hashPart of hashParts) {
        if (typeof answer[hashPart] === 'string') continue;
        if (this.narinfos.delete(hashPart)) this.report.dropped++;
      }
    } catch (e) {
      this.log.warn(
        { err: describeNetworkError(e), paths: hashParts.length },
        'recent narinfo reads not reported',
      );
    }
  }

  private async load(): Promise<void> {
    const started = performance.now();
    const sentAt = this.clock.now();
    try {
      const response = await this.server.request({
        method: 'GET',
        path: RECENT_NARINFOS_PATH,
        signal: AbortSignal.timeout(this.options.timeoutMs),
        retry: PULL_RETRY,
      });
      const text = await response.body.text();
      if (response.statusCode !== 200) {
        this.report.state = batchRouteMissing(response.statusCode) ? 'unsupported' : 'failed';
        if (this.report.state === 'failed')
          this.log.warn({ status: response.statusCode, body: text.slice(0, 200) }, 'recent narinfos refused');
        return;
      }
      const answer = parseNarInfoBatch(text);
      if (!answer) {
        this.report.state = 'failed';
        // By its size only: it may be anything, and this log ends up in the job's log.
        this.log.warn({ bytes: text.length }, 'recent narinfos answered an unexpected body');
        return;
      }
      this.narinfos = recentAnswer(answer);
      this.fetchedAt = sentAt;
      this.report.state = 'loaded';
      this.report.bytes = text.length;
      this.report.loadSeconds = Math.round(performance.now() - started) / 1000;
      this.log.info({ narinfos: this.narinfos.size, bytes: text.length }, 'recent narinfos loaded');
    } catch (e) {
      this.report.state = 'failed';
      this.log.warn({ err: describeNetworkError(e) }, 'recent narinfos fetch failed');
    }
  }
}

/** The answer's narinfos, each keyed by a valid hash part it names, within the size the route allows. */
function recentAnswer(answer: Record<string, unknown>): Map<string, string> {
  const narinfos = new Map<string, string>();
  let bytes = 0;
  for (const [hashPart, narinfo] of Object.entries(answer)) {
    if (typeof narinfo !== 'string' || !HASH_PART_PATTERN.test(hashPart)) continue;
    if (!narinfo.includes(`StorePath: /nix/store/${hashPart}-`)) continue;
    bytes += narinfo.length;
    if (bytes > RECENT_NARINFOS_BYTES) break;
    narinfos.set(hashPart, narinfo);
  }
  return narinfos;
}
