/**
 * The store paths the job's readable slices may hold (the narinfo set, src/contracts/narinfo-set.ts),
 * so that the lookups of paths the cache does not have, most of a CI job's, are answered from
 * memory. Fetched whole once at start (in the background: until it is here, every lookup asks
 * the server), then kept fresh by deltas from the server's cursor, plus the job's own pushes.
 *
 * Freshness: a lookup is answered "absent" only from a set whose last sync request was sent at most
 * `maxAgeMs` before the lookup; older, the lookup waits for a new delta first. A sync covers every
 * narinfo committed before its request was sent, so a path whose narinfo was committed on the
 * server more than `maxAgeMs` before Nix asks is always found, whatever the timing, and one this
 * daemon pushed is found at once. A path the set holds is always asked of the server.
 */
import { hasPrefix, hashPrefix, decodeNarInfoSet, NARINFO_SET_PATH } from '../../contracts/narinfo-set.js';
import type { Logger } from '../report/daemon-log.js';
import type { Clock } from '../upstream/clock.js';
import { describeNetworkError, type Upstream } from '../upstream/upstream-client.js';
import { batchRouteMissing } from '../upstream/batch-lookup.js';
import { PULL_RETRY } from '../upstream/retry.js';

export interface PathSetOptions {
  /** How old (since its request was sent) the last sync may be for a lookup answered from the set. */
  maxAgeMs: number;
  /** After a failed full fetch, how long before another is tried. */
  retryAfterMs: number;
  timeoutMs: number;
}

export const PATH_SET_DEFAULTS: PathSetOptions = { maxAgeMs: 1_000, retryAfterMs: 30_000, timeoutMs: 30_000 };

/** Deltas and own pushes are merged into the sorted array once this many piled up. */
const MERGE_AT = 4_096;

export interface PathSetReport {
  state: 'loading' | 'loaded' | 'failed' | 'unsupported';
  prefixes: number;
  bytes: number;
  loadSeconds: number;
  deltas: number;
  /** Lookups answered 404 from the set, without the server. */
  absent: number;
}

export class PathSet {
  private sorted: Uint32Array = new Uint32Array(0);
  private readonly added = new Set<number>();
  private state: PathSetReport['state'] = 'loading';
  private cursor: string | undefined;
  /** When the request of the last successful sync was sent (clock ms). */
  private syncedAt = -Infinity;
  private syncing: Promise<void> | undefined;
  private failedAt = -Infinity;
  private fullLoad: Promise<void> | undefined;
  private readonly report = { bytes: 0, loadSeconds: 0, deltas: 0, absent: 0 };

  constructor(
    private readonly server: Upstream,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: PathSetOptions = PATH_SET_DEFAULTS,
  ) {}

  get maxAgeMs(): number {
    return this.options.maxAgeMs;
  }

  /** Starts fetching the whole set (the daemon calls it at start; lookups do not wait for it). */
  start(): void {
    if (this.fullLoad || this.state === 'unsupported') return;
    this.fullLoad = this.loadFull().finally(() => (this.fullLoad = undefined));
  }

  /** Whether the path may be in the cache: true unless a fresh enough set says it is not. */
  async mayHold(hashPart: string): Promise<boolean> {
    if (this.state !== 'loaded') {
      if (this.state === 'failed' && this.clock.now() - this.failedAt >= this.options.retryAfterMs)
        this.start();
      return true;
    }
    const askedAt = this.clock.now();
    // A sync sent at or after askedAt - maxAge covers what this lookup must find.
    while (this.syncedAt < askedAt - this.options.maxAgeMs) {
      if (!(await this.sync())) return true;
    }
    return !this.absentFromSet(hashPart);
  }

  /**
   * Without waiting: true when a set fresh enough for `mayHold` says the path is not there
   * (counted as absent, as `mayHold` counts it); false when it may be, or when the set is not
   * fresh enough to say (then `mayHold` syncs first).
   */
  absentNow(hashPart: string): boolean {
    if (this.state !== 'loaded' || this.syncedAt < this.clock.now() - this.options.maxAgeMs) return false;
    return this.absentFromSet(hashPart);
  }

  /** Whether the set as it is lacks the path, counted as an answer from the set when it does. */
  private absentFromSet(hashPart: string): boolean {
    if (this.holds(hashPart)) return false;
    this.report.absent++;
    return true;
  }

  /** Without syncing: whether the set as it is now may hold the path (the prefetch's guess). */
  holds(hashPart: string): boolean {
    if (this.state !== 'loaded') return true;
    const prefix = hashPrefix(hashPart);
    return this.added.has(prefix) || hasPrefix(this.sorted, prefix);
  }

  /** The job pushed this path: found from now on, whatever the server's next delta says. */
  add(hashPart: string): void {
    this.addPrefix(hashPrefix(hashPart));
  }

  toJSON(): PathSetReport {
    return { state: this.state, prefixes: this.sorted.length + this.added.size, ...this.report };
  }

  private addPrefix(prefix: number): void {
    if (hasPrefix(this.sorted, prefix)) return;
    this.added.add(prefix);
    if (this.added.size >= MERGE_AT) this.merge();
  }

  private merge(): void {
    const merged = new Uint32Array(this.sorted.length + this.added.size);
    merged.set(this.sorted);
    merged.set([...this.added], this.sorted.length);
    this.sorted = merged.sort();
    this.added.clear();
  }

  /** One delta (shared by every lookup waiting); false when it failed (those lookups ask the server). */
  private async sync(): Promise<boolean> {
    const before = this.syncedAt;
    this.syncing ??= this.fetch(`${NARINFO_SET_PATH}?since=${this.cursor}`)
      .then((answer) => {
        if (!answer) return;
        for (const prefix of answer.set.prefixes) this.addPrefix(prefix);
        this.cursor = answer.set.cursor;
        this.syncedAt = answer.sentAt;
        this.report.deltas++;
      })
      .finally(() => (this.syncing = undefined));
    await this.syncing;
    return this.syncedAt !== before;
  }

  private async loadFull(): Promise<void> {
    const started = performance.now();
    const answer = await this.fetch(NARINFO_SET_PATH);
    if (!answer) {
      if (this.state !== 'unsupported') this.state = 'failed';
      this.failedAt = this.clock.now();
      return;
    }
    this.sorted = answer.set.prefixes;
    this.cursor = answer.set.cursor;
    this.syncedAt = answer.sentAt;
    this.report.bytes = answer.bytes;
    this.report.loadSeconds = Math.round(performance.now() - started) / 1000;
    // Pushes made while it loaded are kept in `added`.
    this.state = 'loaded';
    this.log.info({ prefixes: this.sorted.length, bytes: answer.bytes }, 'narinfo set loaded');
  }

  /** The set or delta at `path`, with when its request was sent; undefined when there is none (logged). */
  private async fetch(path: string) {
    const sentAt = this.clock.now();
    try {
      const response = await this.server.request({
        method: 'GET',
        path,
        signal: AbortSignal.timeout(this.options.timeoutMs),
        retry: PULL_RETRY,
      });
      const body = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode !== 200) {
        if (batchRouteMissing(response.statusCode)) {
          this.state = 'unsupported';
          this.log.info('the cache server has no narinfo set: every lookup asks it');
        } else {
          this.log.warn(
            { status: response.statusCode, body: body.toString().slice(0, 200) },
            'narinfo set refused',
          );
        }
        return undefined;
      }
      return { set: decodeNarInfoSet(body), sentAt, bytes: body.length };
    } catch (e) {
      this.log.warn({ err: describeNetworkError(e) }, 'narinfo set fetch failed');
      return undefined;
    }
  }
}
