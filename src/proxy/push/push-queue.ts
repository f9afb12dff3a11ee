/**
 * The push queue: built paths in, their closures out to the server, minus what the cache already
 * has, what upstream caches serve and what the filter excludes. Planning (closure, checks) happens
 * here; the uploads themselves in the Uploader.
 */
import { NARINFO_BATCH_LIMIT } from '../../contracts/narinfo-batch.js';
import { StorePath } from '../../nix/store-path.js';
import type { PushConfig } from '../../contracts/daemon-config.js';
import type { Logger } from '../report/daemon-log.js';
import type { Stats } from '../report/stats.js';
import type { LocalStore, PathInfo } from './local-store.js';
import { Uploader } from './uploader.js';
import { batchRouteMissing, narInfoBatchRequest, parseNarInfoBatch } from '../upstream/batch-lookup.js';
import { describeNetworkError, Upstream } from '../upstream/upstream-client.js';

/** Narinfo existence checks (server and upstream caches) in flight at once. */
const CHECK_CONCURRENCY = 16;
const UPSTREAM_CACHE_TIMEOUT_MS = 5_000;
const UPSTREAM_CACHE_DOWN_MS = 60_000;

export interface PushQueueOptions {
  config: PushConfig;
  server: Upstream;
  store: LocalStore;
  stats: Stats;
  log: Logger;
  /** Told about every narinfo now on the server, so the proxy forgets an earlier miss. */
  onPushed?: (hashPart: string) => void;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class PushQueue {
  /** Roots reported but not yet planned. */
  private pendingRoots = new Set<string>();
  /** Every path ever planned (pushed, skipped, failed or on its way): each is considered once. */
  private readonly seen = new Set<string>();
  private readonly uploader: Uploader;
  private planning: Promise<void> | undefined;
  /** Paths being planned (roots, then their closure while it is checked against the caches). */
  private inPlanning = 0;
  /** Derivations whose outputs are being looked up. */
  private resolving = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly filter: RegExp | undefined;
  private readonly upstreamCaches: Upstream[];
  /** Upstream caches that failed on the network: not asked again for a while (an offline runner). */
  private readonly upstreamDownUntil = new Map<Upstream, number>();
  private readonly abort = new AbortController();
  /** Set when the server answered the batch lookup route 404/405: it predates it. */
  private batchUnsupported = false;

  constructor(private readonly options: PushQueueOptions) {
    this.filter = options.config.filter ? new RegExp(options.config.filter) : undefined;
    this.upstreamCaches = options.config.upstreamCaches.map(
      (url) =>
        new Upstream(url, {
          retry: { retries: 1 },
          connections: 4,
          connectTimeoutMs: UPSTREAM_CACHE_TIMEOUT_MS,
          headersTimeoutMs: UPSTREAM_CACHE_TIMEOUT_MS,
          bodyTimeoutMs: UPSTREAM_CACHE_TIMEOUT_MS,
        }),
    );
    this.uploader = new Uploader({
      concurrency: options.config.concurrency,
      compression: options.config.compression,
      server: options.server,
      stats: options.stats,
      log: options.log,
      signal: this.abort.signal,
      onPushed: options.onPushed,
      onSettled: () => this.checkIdle(),
    });
  }

  /** Paths not yet pushed, skipped or failed: roots not planned yet, paths being planned or uploaded. */
  get queued(): number {
    return this.pendingRoots.size + this.resolving + this.inPlanning + this.uploader.pending;
  }

  get isIdle(): boolean {
    return this.queued === 0 && this.planning === undefined;
  }

  /** Queues store paths (and so their closures). Derivation files are not pushed. */
  enqueue(paths: string[]): void {
    const fresh = paths.filter((p) => !p.endsWith('.drv') && !this.seen.has(p) && !this.pendingRoots.has(p));
    if (fresh.length === 0) return;
    for (const p of fresh) this.pendingRoots.add(p);
    this.kickPlanner();
  }

  /**
   * Queues the outputs of a derivation (what the post-build hook reports: Nix 2.8 leaves OUT_PATHS
   * empty). A drain waits for the lookup too.
   */
  async enqueueOutputsOf(drvPath: string): Promise<void> {
    this.resolving++;
    try {
      this.enqueue(await this.options.store.derivationOutputs(drvPath));
    } catch (e) {
      const message = `cannot find the outputs of ${drvPath}: ${(e as Error).message}`;
      this.options.stats.error(message);
      this.options.log.warn({ err: message }, 'built path report ignored');
    } finally {
      this.resolving--;
      this.checkIdle();
    }
  }

  /** Resolves when everything queued so far is pushed, skipped or failed. */
  idle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops all work: in-flight uploads are aborted, nothing new starts. */
  async close(): Promise<void> {
    this.abort.abort(new Error('the daemon is shutting down'));
    await Promise.all(this.upstreamCaches.map((u) => u.destroy()));
  }

  private checkIdle(): void {
    if (!this.isIdle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private kickPlanner(): void {
    if (this.planning || this.abort.signal.aborted) return;
    this.planning = (async () => {
      this.options.stats.pushStarted();
      while (this.pendingRoots.size > 0 && !this.abort.signal.aborted) {
        const roots = [...this.pendingRoots];
        this.pendingRoots = new Set();
        await this.plan(roots);
      }
    })()
      .catch((e: unknown) => this.options.log.error({ err: (e as Error).message }, 'push planner failed'))
      .finally(() => {
        this.options.stats.pushFinished();
        this.planning = undefined;
        this.checkIdle();
      });
  }

  private async closureOf(roots: string[]): Promise<PathInfo[]> {
    const { store, stats, log } = this.options;
    try {
      return await store.closureInfo(roots);
    } catch (e) {
      // Usually a root that is no longer valid (garbage-collected): set those aside, try the rest once.
      const invalid = new Set(await store.invalidPaths(roots).catch(() => []));
      const failed = invalid.size > 0 ? [...invalid] : roots;
      const error = invalid.size > 0 ? 'not a valid store path (garbage-collected?)' : (e as Error).message;
      for (const path of failed) {
        stats.pushFailed(path, error);
        log.warn({ path, err: error }, 'push failed');
      }
      return invalid.size > 0 ? this.closureOf(roots.filter((r) => !invalid.has(r))) : [];
    }
  }

  /** Finds what of the roots' closures needs pushing, and schedules it. */
  private async plan(roots: string[]): Promise<void> {
    const { stats, log } = this.options;
    this.inPlanning = roots.length;
    const fresh = (await this.closureOf(roots)).filter((info) => !this.seen.has(info.path));
    for (const info of fresh) this.seen.add(info.path);
    let toPush = 0;
    const candidates: PathInfo[] = [];
    for (const info of fresh) {
      if (this.filter?.test(info.path)) stats.skippedFiltered++;
      else candidates.push(info);
    }
    this.inPlanning = candidates.length;
    // Uploads start as soon as a path is found missing; narinfo order is kept by the uploader,
    // which knows (expect) every path that may still come.
    this.uploader.expect(candidates.map((info) => info.path));
    const onServer = await this.serverHas(candidates.map((info) => StorePath.parse(info.path).hashPart));
    await forEachLimited(candidates, CHECK_CONCURRENCY, async (info) => {
      const where = await this.whereCached(info.path, onServer);
      if (where === 'server') stats.skippedAlreadyCached++;
      else if (where === 'upstream') stats.skippedUpstream++;
      if (where) {
        this.uploader.skip(info.path);
      } else {
        toPush++;
        this.uploader.add([info]);
      }
      this.inPlanning--;
    });
    log.info({ roots: roots.length, closure: fresh.length, toPush }, 'planned push');
    this.inPlanning = 0;
  }

  /**
   * Which of these narinfos the job's write slice has, asked in batches; undefined when the server
   * cannot say (no batch route, or trouble), and each path is then asked about on its own. Never
   * the union: a path another readable slice planted first would be skipped, and the job's readers
   * would keep getting it (issue 19 finding 2).
   */
  private async serverHas(hashParts: string[]): Promise<Set<string> | undefined> {
    if (this.batchUnsupported || hashParts.length === 0) return undefined;
    const found = new Set<string>();
    try {
      for (let start = 0; start < hashParts.length; start += NARINFO_BATCH_LIMIT) {
        const { statusCode, text } = await this.options.server.requestText({
          ...narInfoBatchRequest(hashParts.slice(start, start + NARINFO_BATCH_LIMIT), 'write'),
          signal: this.abort.signal,
        });
        if (batchRouteMissing(statusCode)) this.batchUnsupported = true;
        const narinfos = statusCode === 200 ? parseNarInfoBatch(text) : undefined;
        if (!narinfos) return undefined;
        for (const hashPart of Object.keys(narinfos)) found.add(hashPart);
      }
    } catch {
      return undefined;
    }
    return found;
  }

  /**
   * 'server' if the cache has the path, 'upstream' if an upstream cache serves it. `onServer` is
   * the batch answer, when there is one.
   */
  private async whereCached(
    path: string,
    onServer?: Set<string>,
  ): Promise<'server' | 'upstream' | undefined> {
    const hashPart = StorePath.parse(path).hashPart;
    if (onServer) {
      if (onServer.has(hashPart)) return 'server';
    } else if (await this.serverAnswers(hashPart)) return 'server';
    return this.upstreamHas(`/${hashPart}.narinfo`);
  }

  /** Whether the server answers a HEAD of the narinfo in the write slice with 200. */
  private async serverAnswers(hashPart: string): Promise<boolean> {
    try {
      const { statusCode } = await this.options.server.requestText({
        method: 'HEAD',
        path: `/${hashPart}.narinfo?scope=write`,
        signal: this.abort.signal,
      });
      return statusCode === 200;
    } catch {
      return false; // the upload will try (and report) again
    }
  }

  /** 'upstream' if an upstream cache serves the narinfo. */
  private async upstreamHas(narinfo: string): Promise<'upstream' | undefined> {
    for (const cache of this.upstreamCaches) {
      if ((this.upstreamDownUntil.get(cache) ?? 0) > Date.now()) continue;
      try {
        const response = await cache.request({
          method: 'HEAD',
          path: narinfo,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(UPSTREAM_CACHE_TIMEOUT_MS * 2)]),
        });
        await response.body.dump();
        if (response.statusCode === 200) return 'upstream';
      } catch (e) {
        if (this.abort.signal.aborted) break;
        // An unreachable upstream cache serves nothing; say so once, then stop asking for a while.
        if (!this.upstreamDownUntil.has(cache)) {
          this.options.log.warn(
            { cache: cache.baseUrl, err: describeNetworkError(e) },
            'upstream cache unreachable',
          );
        }
        this.upstreamDownUntil.set(cache, Date.now() + UPSTREAM_CACHE_DOWN_MS);
      }
    }
    return undefined;
  }
}
