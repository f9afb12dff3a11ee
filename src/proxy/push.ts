/**
 * The push queue: built paths in, their closures out to the server, minus what the cache already
 * has, what upstream caches serve and what the filter excludes. References are uploaded before
 * their referrers, so a narinfo only appears once what it refers to is there; several uploads run
 * at once.
 */
import { mkdir } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { serializeNarInfo, type NarInfo } from '../nix/narinfo.js';
import { StorePath } from '../nix/store-path.js';
import type { PushConfig } from './config.js';
import type { Logger } from './log.js';
import { makeNarFile } from './nar-file.js';
import type { Stats } from './stats.js';
import type { LocalStore, PathInfo } from './store.js';
import { describeNetworkError, Upstream, UpstreamError } from './upstream.js';

/** Narinfo existence checks (server and upstream caches) in flight at once. */
const CHECK_CONCURRENCY = 16;
const UPSTREAM_CACHE_TIMEOUT_MS = 5_000;

export interface PushQueueOptions {
  config: PushConfig;
  server: Upstream;
  store: LocalStore;
  stats: Stats;
  log: Logger;
  /** Temp NAR files go here. */
  workDir: string;
  /** Told about every narinfo now on the server, so the proxy forgets an earlier miss. */
  onPushed?: (hashPart: string) => void;
}

interface Upload {
  info: PathInfo;
  /** References still waiting to be uploaded. */
  waitingOn: Set<string>;
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
  private pendingRoots: string[] = [];
  /** Every path ever planned (pushed, skipped, failed or on its way): each is considered once. */
  private readonly seen = new Set<string>();
  private readonly waiting = new Map<string, Upload>();
  private readonly uploading = new Set<string>();
  private readonly failedPaths = new Set<string>();
  private planning: Promise<void> | undefined;
  /** Paths being planned (roots, then their closure while it is checked against the caches). */
  private inPlanning = 0;
  /** Derivations whose outputs are being looked up. */
  private resolving = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly filter: RegExp | undefined;
  private readonly upstreamCaches: Upstream[];
  private readonly abort = new AbortController();
  private workDirReady: Promise<unknown> | undefined;

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
  }

  /** Paths not yet pushed, skipped or failed: roots not planned yet, waiting and uploading paths. */
  get queued(): number {
    return (
      this.pendingRoots.length + this.resolving + this.inPlanning + this.waiting.size + this.uploading.size
    );
  }

  get isIdle(): boolean {
    return this.queued === 0 && this.planning === undefined;
  }

  /** Queues store paths (and so their closures). Derivation files are not pushed. */
  enqueue(paths: string[]): void {
    const fresh = paths.filter(
      (p) => !p.endsWith('.drv') && !this.seen.has(p) && !this.pendingRoots.includes(p),
    );
    if (fresh.length === 0) return;
    this.pendingRoots.push(...fresh);
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
      while (this.pendingRoots.length > 0 && !this.abort.signal.aborted) {
        const roots = this.pendingRoots;
        this.pendingRoots = [];
        await this.plan(roots);
      }
    })()
      .catch((e: unknown) => this.options.log.error({ err: (e as Error).message }, 'push planner failed'))
      .finally(() => {
        this.planning = undefined;
        this.checkIdle();
      });
  }

  private async closureOf(roots: string[]): Promise<PathInfo[]> {
    try {
      return await this.options.store.closureInfo(roots);
    } catch (e) {
      if (roots.length === 1) {
        this.fail(roots[0]!, (e as Error).message);
        return [];
      }
      // One bad root fails the whole query: ask per root, so the others still get pushed.
      const infos = new Map<string, PathInfo>();
      for (const root of roots) for (const info of await this.closureOf([root])) infos.set(info.path, info);
      return [...infos.values()];
    }
  }

  /** Finds what of the roots' closures needs pushing, and schedules it. */
  private async plan(roots: string[]): Promise<void> {
    const { stats, log } = this.options;
    this.inPlanning = roots.length;
    const fresh = (await this.closureOf(roots)).filter((info) => !this.seen.has(info.path));
    for (const info of fresh) this.seen.add(info.path);
    this.inPlanning = fresh.length;
    const toPush: PathInfo[] = [];
    const candidates: PathInfo[] = [];
    for (const info of fresh) {
      if (this.filter?.test(info.path)) stats.skippedFiltered++;
      else candidates.push(info);
    }
    await forEachLimited(candidates, CHECK_CONCURRENCY, async (info) => {
      const where = await this.whereCached(info.path);
      if (where === 'server') stats.skippedAlreadyCached++;
      else if (where === 'upstream') stats.skippedUpstream++;
      else toPush.push(info);
    });
    log.info({ roots: roots.length, closure: fresh.length, toPush: toPush.length }, 'planned push');
    this.inPlanning = 0;
    for (const info of toPush) this.waiting.set(info.path, { info, waitingOn: new Set() });
    for (const info of toPush) {
      const upload = this.waiting.get(info.path)!;
      for (const ref of info.references) {
        if (ref === upload.info.path) continue;
        if (this.failedPaths.has(ref)) upload.waitingOn.add(ref);
        else if (this.waiting.has(ref) || this.uploading.has(ref)) upload.waitingOn.add(ref);
      }
    }
    for (const info of toPush) {
      const upload = this.waiting.get(info.path);
      const failedRef = upload && [...upload.waitingOn].find((r) => this.failedPaths.has(r));
      if (failedRef && this.waiting.delete(info.path)) {
        this.fail(info.path, `not pushed: its reference ${failedRef} failed to push`);
      }
    }
    this.startUploads();
  }

  /** 'server' if the cache has the path, 'upstream' if an upstream cache serves it. */
  private async whereCached(path: string): Promise<'server' | 'upstream' | undefined> {
    const narinfo = `/${StorePath.parse(path).hashPart}.narinfo`;
    try {
      const response = await this.options.server.request({
        method: 'HEAD',
        path: narinfo,
        signal: this.abort.signal,
      });
      await response.body.dump();
      if (response.statusCode === 200) return 'server';
    } catch {
      // The upload will try (and report) again.
    }
    for (const cache of this.upstreamCaches) {
      try {
        const response = await cache.request({
          method: 'HEAD',
          path: narinfo,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(UPSTREAM_CACHE_TIMEOUT_MS * 2)]),
        });
        await response.body.dump();
        if (response.statusCode === 200) return 'upstream';
      } catch {
        // An unreachable upstream cache serves nothing.
      }
    }
    return undefined;
  }

  private startUploads(): void {
    const limit = this.options.config.concurrency;
    for (const [path, upload] of this.waiting) {
      if (this.uploading.size >= limit || this.abort.signal.aborted) break;
      if (upload.waitingOn.size > 0) continue;
      this.waiting.delete(path);
      this.uploading.add(path);
      void this.uploadOne(upload.info);
    }
    this.checkIdle();
  }

  private async uploadOne(info: PathInfo): Promise<void> {
    const { stats, log } = this.options;
    stats.pushStarted();
    try {
      const bytes = await this.upload(info);
      stats.pushedPaths++;
      stats.pushedBytes += bytes;
      log.info({ path: info.path, bytes }, 'pushed');
      this.options.onPushed?.(StorePath.parse(info.path).hashPart);
      this.uploading.delete(info.path);
      for (const other of this.waiting.values()) other.waitingOn.delete(info.path);
    } catch (e) {
      this.uploading.delete(info.path);
      this.fail(info.path, e instanceof UpstreamError ? e.message : describeNetworkError(e));
    } finally {
      stats.pushFinished();
      this.startUploads();
    }
  }

  /** Marks a path failed, and every waiting path that refers to it, transitively. */
  private fail(path: string, error: string): void {
    this.failedPaths.add(path);
    this.options.stats.pushFailed(path, error);
    this.options.log.warn({ path, err: error }, 'push failed');
    for (const [other, upload] of this.waiting) {
      if (upload.waitingOn.has(path) && this.waiting.delete(other)) {
        this.fail(other, `not pushed: its reference ${path} failed to push`);
      }
    }
  }

  /** Makes the NAR file, uploads it, then the narinfo. Returns the bytes uploaded. */
  private async upload(info: PathInfo): Promise<number> {
    const { config, store, workDir } = this.options;
    const signal = this.abort.signal;
    this.workDirReady ??= mkdir(workDir, { recursive: true });
    await this.workDirReady;
    const storePath = StorePath.parse(info.path);
    const file = await makeNarFile(store, info, config.compression, workDir, signal);
    try {
      const url = file.url;
      await this.put(`/${url}`, () => createReadStream(file.path), {
        'content-type': 'application/x-nix-nar',
        'content-length': String(file.fileSize),
      });
      const narinfo: NarInfo = {
        storePath: info.path,
        url,
        compression: config.compression,
        fileHash: file.fileHash,
        fileSize: file.fileSize,
        narHash: info.narHash,
        narSize: info.narSize,
        references: info.references.map((r) => StorePath.parse(r).baseName),
        sigs: [],
        extra: [],
      };
      if (info.deriver) narinfo.deriver = StorePath.parse(info.deriver).baseName;
      if (info.ca) narinfo.ca = info.ca;
      const text = serializeNarInfo(narinfo);
      await this.put(`/${storePath.hashPart}.narinfo`, () => text, {
        'content-type': 'text/x-nix-narinfo',
        'content-length': String(Buffer.byteLength(text)),
      });
      return file.fileSize + Buffer.byteLength(text);
    } finally {
      await file.remove();
    }
  }

  private async put(
    path: string,
    body: () => ReturnType<typeof createReadStream> | string,
    headers: Record<string, string>,
  ): Promise<void> {
    const response = await this.options.server.request({
      method: 'PUT',
      path,
      body,
      headers,
      signal: this.abort.signal,
    });
    const text = await response.body.text();
    if (response.statusCode < 200 || response.statusCode > 299) {
      throw new UpstreamError(
        `PUT ${path}: HTTP ${response.statusCode} ${text.slice(0, 300).trim()}`,
        response.statusCode,
      );
    }
  }

  /** The directory for temp NAR files. */
  static workDirIn(stateDir: string): string {
    return join(stateDir, 'push');
  }
}
