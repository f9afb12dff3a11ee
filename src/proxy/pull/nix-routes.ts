/**
 * What Nix sees: a binary cache at the daemon's address. `/nix-cache-info` is answered here;
 * narinfo lookups from memory when it can (the recent narinfos for hits, the narinfo set for
 * misses), else from the server with the token, gathered into batches (one `POST
 * /_api/v1/narinfos` for all Nix asks at once); NAR downloads by nar-downloads.ts. Upstream trouble
 * becomes a 404 for narinfos (Nix then builds: a cache outage must not fail a build) and a 502 for
 * NARs, and is recorded in the stats.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import { parseNarUrl } from '../../nix/nar-url.js';
import { Batcher } from './lookup-batcher.js';
import { textHeaders } from './response-headers.js';
import type { Logger } from '../report/daemon-log.js';
import { batchRouteMissing, narInfoBatchRequest, parseNarInfoBatch } from '../upstream/batch-lookup.js';
import { NarDownloads } from './nar-downloads.js';
import { NarInfoPrefetch } from './narinfo-prefetch.js';
import { PathSet } from './path-set.js';
import { RecentNarInfos } from './recent-narinfos.js';
import { NarInfoStream } from '../upstream/narinfo-stream.js';
import type { Clock } from '../upstream/clock.js';
import type { Stats } from '../report/stats.js';
import { describeNetworkError, type Upstream, type UpstreamRequest } from '../upstream/upstream-client.js';
import { PULL_RETRY } from '../upstream/retry.js';

/** Priority 30 sorts before cache.nixos.org (40), so Nix asks the proxy first. */
export const NIX_CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n';

const NARINFO_PATH = /^\/([0-9a-df-np-sv-z]{32})\.narinfo$/;

/** After a network failure, narinfo lookups answer 404 at once for this long instead of waiting again. */
const SERVER_DOWN_BACKOFF_MS = 10_000;
const NARINFO_TIMEOUT_MS = 15_000;
/**
 * Lookups per batch and batches at once. Nix has at most `http-connections` (25) lookups in
 * flight, so a batch holds what arrived while the previous one was out. One batch at a time cost
 * less CPU on both sides than two (bigger batches) and was no slower.
 */
const NARINFO_BATCHING = { maxBatch: 100, maxInFlight: 1 };

/** What the server said about one narinfo: its signed text, that it has none, or why it could not say. */
type NarInfoAnswer = { narinfo: string } | { missing: true } | { failed: string };
const MISSING: NarInfoAnswer = { missing: true };
const UNREACHABLE = { failed: 'the cache server is unreachable' };
const MISSES_KEPT = 100_000;
/** The 404 most lookups get, made once. */
const NOT_CACHED = 'not in the cache';
const NOT_CACHED_BODY = `${NOT_CACHED}\n`;

/** Each hash part's answer in a batch answer (`{"<hash part>": "<narinfo>"}`, hits only). */
function answersOf(hashParts: string[], narinfos: Record<string, unknown>): Map<string, NarInfoAnswer> {
  return new Map(
    hashParts.map((hashPart) => {
      const narinfo = narinfos[hashPart];
      return [hashPart, typeof narinfo === 'string' ? { narinfo } : MISSING];
    }),
  );
}

export class CacheRoutes {
  /**
   * Narinfo hash parts the server said it does not have, with when they were asked: not asked
   * again within the set's freshness bound (path-set.ts), which holds for these answers too.
   */
  private readonly misses = new Map<string, number>();
  /** The paths the readable slices may hold: most misses are answered from it. */
  readonly paths: PathSet;
  /** The narinfos the readable slices used last: most hits are answered from them. */
  readonly recent: RecentNarInfos;
  private readonly prefetch: NarInfoPrefetch<NarInfoAnswer>;
  private serverDownUntil = 0;
  private readonly nars: NarDownloads;
  private readonly stream: NarInfoStream;
  /** Set when the server answered the batch route 404/405: it predates it. */
  private batchUnsupported = false;
  private readonly narinfos = new Batcher<NarInfoAnswer>(
    (hashParts) => this.fetchNarInfos(hashParts),
    NARINFO_BATCHING,
  );

  constructor(
    private readonly server: Upstream,
    private readonly stats: Stats,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {
    this.nars = new NarDownloads(server, stats, log, (message, network) =>
      this.upstreamFailed(message, network),
    );
    this.paths = new PathSet(server, clock, log);
    this.recent = new RecentNarInfos(server, clock, log);
    this.stream = new NarInfoStream(server, log);
    this.prefetch = new NarInfoPrefetch(
      (hashPart) => this.lookupRemembered(hashPart),
      (hashPart) => this.paths.holds(hashPart) && !this.recentMiss(hashPart) && !this.recent.has(hashPart),
      () => clock.now(),
    );
    stats.lookupSet = () => ({
      ...this.paths.toJSON(),
      prefetched: this.prefetch.fetched,
      prefetchServed: this.prefetch.served,
      recent: this.recent.toJSON(),
      streamed: this.stream.answered,
    });
  }

  /** Starts fetching the narinfo set and the recent narinfos. */
  start(): void {
    this.paths.start();
    this.recent.start();
  }

  /** Drops the NARs and narinfos fetched ahead; reports the reads the server has not seen. */
  async close(): Promise<void> {
    this.nars.close();
    this.prefetch.clear();
    this.stream.close();
    await this.recent.close();
  }

  /** The push engine just uploaded this narinfo: found from now on, in the job's own slice. */
  forgetMiss(hashPart: string): void {
    this.misses.delete(hashPart);
    this.paths.add(hashPart);
    this.recent.forget(hashPart);
  }

  private recentMiss(hashPart: string): boolean {
    const askedAt = this.misses.get(hashPart);
    if (askedAt === undefined) return false;
    if (this.clock.now() - askedAt <= this.paths.maxAgeMs) return true;
    this.misses.delete(hashPart);
    return false;
  }

  /**
   * Answers the request if it is a cache route; false if not. A lookup that memory answers (most
   * of a job's: paths the narinfo set lacks) is answered before this returns, without a promise.
   */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string): boolean | Promise<boolean> {
    const method = req.method ?? 'GET';
    if (pathname === '/nix-cache-info') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      res.writeHead(200, textHeaders('text/x-nix-cache-info', NIX_CACHE_INFO));
      res.end(method === 'HEAD' ? undefined : NIX_CACHE_INFO);
      return true;
    }
    const narinfo = NARINFO_PATH.exec(pathname);
    if (narinfo) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      const hashPart = narinfo[1]!;
      const recent = this.recent.take(hashPart);
      if (recent !== undefined) {
        this.serveHit(method, hashPart, recent, res);
        this.stats.paths.hit(hashPart, recent);
        return true;
      }
      if (this.knownAbsent(hashPart)) {
        this.miss(res, NOT_CACHED);
        this.stats.paths.miss(hashPart);
        return true;
      }
      return this.narinfo(method, hashPart, res).then(() => true);
    }
    if (pathname.startsWith('/') && parseNarUrl(pathname.slice(1))) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      return this.nars.serve(method, pathname, req, res).then(() => true);
    }
    return false;
  }

  /**
   * Whether memory alone says the cache lacks this path: a recent 404, or a fresh narinfo set
   * without it. What was fetched ahead, a server marked down and a set too old to say take
   * `answerNarInfo`'s way, which gives the same answer the same way when this one is true.
   */
  private knownAbsent(hashPart: string): boolean {
    if (this.recentMiss(hashPart)) return true;
    return (
      !this.prefetch.has(hashPart) && Date.now() >= this.serverDownUntil && this.paths.absentNow(hashPart)
    );
  }

  private miss(res: ServerResponse, why: string): undefined {
    this.stats.misses++;
    const body = why === NOT_CACHED ? NOT_CACHED_BODY : `${why}\n`;
    res.writeHead(404, textHeaders('text/plain; charset=utf-8', body));
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private upstreamFailed(message: string, network: boolean): void {
    this.stats.error(message);
    this.log.warn({ err: message }, 'cache server lookup failed');
    if (network) this.serverDownUntil = Date.now() + SERVER_DOWN_BACKOFF_MS;
  }

  private async narinfo(method: 'GET' | 'HEAD', hashPart: string, res: ServerResponse): Promise<void> {
    const answer = await this.answerNarInfo(method, hashPart, res);
    if (answer) this.stats.paths.hit(hashPart, answer);
    else this.stats.paths.miss(hashPart);
  }

  /** Answers a lookup `knownAbsent` did not (nor a recent miss); the narinfo served, or undefined for a 404. */
  private async answerNarInfo(
    method: 'GET' | 'HEAD',
    hashPart: string,
    res: ServerResponse,
  ): Promise<string | undefined> {
    let answer: NarInfoAnswer | undefined;
    try {
      // A hit fetched ahead answers; a miss fetched ahead only within the freshness bound.
      const ahead = await this.prefetch.take(hashPart);
      if (ahead && 'narinfo' in ahead) answer = ahead;
      else if (ahead && 'missing' in ahead && this.recentMiss(hashPart)) return this.miss(res, NOT_CACHED);
      else {
        if (Date.now() < this.serverDownUntil) return this.miss(res, UNREACHABLE.failed);
        if (!(await this.paths.mayHold(hashPart))) return this.miss(res, NOT_CACHED);
        answer = await this.lookupRemembered(hashPart);
        if (answer === undefined || 'missing' in answer) return this.miss(res, NOT_CACHED);
      }
    } catch (e) {
      // Not expected (lookups answer failures as such), but never a failed build over it.
      this.upstreamFailed(`narinfo lookup failed: ${(e as Error).message}`, false);
      return this.miss(res, 'the cache lookup failed');
    }
    if ('failed' in answer) return this.miss(res, answer.failed);
    this.serveHit(method, hashPart, answer.narinfo, res);
    return answer.narinfo;
  }

  private serveHit(method: 'GET' | 'HEAD', hashPart: string, narinfo: string, res: ServerResponse): void {
    this.stats.hits++;
    if (method === 'GET') {
      this.nars.noteHit(narinfo);
      this.prefetch.noteHit(hashPart, narinfo);
    }
    res.writeHead(200, textHeaders('text/x-nix-narinfo', narinfo));
    res.end(method === 'HEAD' ? undefined : narinfo);
  }

  /** A batch lookup whose miss is remembered, as when Nix asks (for the lookups fetched ahead). */
  private async lookupRemembered(hashPart: string): Promise<NarInfoAnswer | undefined> {
    const askedAt = this.clock.now();
    const answer = await this.narinfos.lookup(hashPart);
    if (answer === undefined || 'missing' in answer) this.rememberMiss(hashPart, askedAt);
    return answer;
  }

  private rememberMiss(hashPart: string, askedAt: number): void {
    // Bounded: old entries are past the bound anyway.
    if (this.misses.size >= MISSES_KEPT) this.misses.clear();
    this.misses.set(hashPart, askedAt);
  }

  /**
   * One batch of narinfo lookups: one `POST /_api/v1/narinfos` for all of them. A server without
   * that route (older than the proxy) is asked one `GET /<hash>.narinfo` each from then on.
   */
  private async fetchNarInfos(hashParts: string[]): Promise<Map<string, NarInfoAnswer>> {
    const everyone = (answer: NarInfoAnswer) => new Map(hashParts.map((hashPart) => [hashPart, answer]));
    // Lookups that queued while the previous batch found the server down need not wait again.
    if (Date.now() < this.serverDownUntil) return everyone(UNREACHABLE);
    if (!this.batchUnsupported) {
      const streamed = await this.stream.lookup(hashParts);
      if (streamed) return answersOf(hashParts, streamed);
      const response = await this.lookupRequest(narInfoBatchRequest(hashParts));
      if ('failed' in response) return everyone(response);
      const { status, text } = response;
      if (status === 200) {
        const narinfos = parseNarInfoBatch(text);
        if (!narinfos) {
          this.upstreamFailed(`narinfo lookup answered an unexpected body: ${text.slice(0, 100)}`, false);
          return everyone({ failed: 'the cache server answered something unexpected' });
        }
        return answersOf(hashParts, narinfos);
      }
      if (!batchRouteMissing(status)) return everyone(this.lookupFailed(status, text));
      this.batchUnsupported = true;
      this.log.info(
        { status },
        'the cache server has no batch narinfo lookups: asking one narinfo at a time',
      );
    }
    return new Map(
      await Promise.all(
        hashParts.map(async (hashPart) => [hashPart, await this.fetchNarInfo(hashPart)] as const),
      ),
    );
  }

  /** One narinfo, the way a binary cache client asks: `GET /<hash>.narinfo`. */
  private async fetchNarInfo(hashPart: string): Promise<NarInfoAnswer> {
    const response = await this.lookupRequest({ method: 'GET', path: `/${hashPart}.narinfo` });
    if ('failed' in response) return response;
    if (response.status === 200) return { narinfo: response.text };
    if (response.status === 404) return MISSING;
    return this.lookupFailed(response.status, response.text);
  }

  /** A lookup request's status and body, or why there is none (recorded; the server marked down). */
  private async lookupRequest(
    request: UpstreamRequest,
  ): Promise<{ status: number; text: string } | { failed: string }> {
    try {
      const response = await this.server.requestText({
        retry: PULL_RETRY,
        ...request,
        signal: AbortSignal.timeout(NARINFO_TIMEOUT_MS),
      });
      return { status: response.statusCode, text: response.text };
    } catch (e) {
      this.upstreamFailed(`narinfo lookup failed: ${describeNetworkError(e)}`, true);
      return UNREACHABLE;
    }
  }

  /** An answer that is neither a hit nor a miss: recorded, and a 404 for Nix. */
  private lookupFailed(status: number, text: string): NarInfoAnswer {
    this.upstreamFailed(`narinfo lookup answered HTTP ${status}: ${text.slice(0, 200).trim()}`, false);
    return { failed: `the cache server answered HTTP ${status}` };
  }
}

export function methodNotAllowed(method: string, allowed: string): HttpError {
  return new HttpError(405, `method ${method} is not allowed here; use ${allowed}`, 'method', {
    allow: allowed,
  });
}
