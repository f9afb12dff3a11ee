/**
 * What Nix sees: a binary cache at the daemon's address. `/nix-cache-info` is answered here;
 * narinfo lookups and NAR downloads go to the server with the token, lookups gathered into
 * batches (one `POST /_api/v1/narinfos` for all Nix asks at once). Upstream trouble becomes a
 * 404 for narinfos (Nix then builds: a cache outage must not fail a build) and a 502 for NARs,
 * and is recorded in the stats.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../../contracts/http-error.js';
import { parseNarUrl } from '../../nix/nar-url.js';
import { Batcher } from './lookup-batcher.js';
import { ByteCounter } from './byte-counter.js';
import { forwardableHeaders, textHeaders } from './response-headers.js';
import type { Logger } from '../report/daemon-log.js';
import { batchRouteMissing, narInfoBatchRequest, parseNarInfoBatch } from '../upstream/batch-lookup.js';
import { Readahead } from './readahead.js';
import { isSafeRedirect, NarLinks } from './nar-links.js';
import { NarInfoPrefetch } from './narinfo-prefetch.js';
import { PathSet } from './path-set.js';
import type { Clock } from '../upstream/clock.js';
import type { Stats } from '../report/stats.js';
import {
  describeNetworkError,
  type Upstream,
  type UpstreamRequest,
  type UpstreamResponse,
} from '../upstream/upstream-client.js';

/** Priority 30 sorts before cache.nixos.org (40), so Nix asks the proxy first. */
export const NIX_CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n';

const NARINFO_PATH = /^\/([0-9a-df-np-sv-z]{32})\.narinfo$/;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** After a network failure, narinfo lookups answer 404 at once for this long instead of waiting again. */
const SERVER_DOWN_BACKOFF_MS = 10_000;
const NARINFO_TIMEOUT_MS = 15_000;
const PROXY_RETRY = { retries: 2, maxDelayMs: 1_000, maxRetryAfterMs: 2_000 };
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

export class CacheRoutes {
  /**
   * Narinfo hash parts the server said it does not have, with when they were asked: not asked
   * again within the set's freshness bound (path-set.ts), which holds for these answers too.
   */
  private readonly misses = new Map<string, number>();
  /** The paths the readable slices may hold: most misses are answered from it. */
  readonly paths: PathSet;
  private readonly prefetch: NarInfoPrefetch<NarInfoAnswer>;
  private serverDownUntil = 0;
  private readonly readahead: Readahead;
  private readonly links: NarLinks;
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
    this.readahead = new Readahead(server, log);
    this.links = new NarLinks(server, log);
    this.paths = new PathSet(server, clock, log);
    this.prefetch = new NarInfoPrefetch(
      (hashPart) => this.lookupRemembered(hashPart),
      (hashPart) => this.paths.holds(hashPart) && !this.recentMiss(hashPart),
      () => clock.now(),
    );
    stats.lookupSet = () => ({
      ...this.paths.toJSON(),
      prefetched: this.prefetch.fetched,
      prefetchServed: this.prefetch.served,
    });
  }

  /** Starts fetching the narinfo set. */
  start(): void {
    this.paths.start();
  }

  /** Drops the NARs and narinfos fetched ahead. */
  close(): void {
    this.readahead.close();
    this.prefetch.clear();
  }

  /** The push engine just uploaded this narinfo: found from now on. */
  forgetMiss(hashPart: string): void {
    this.misses.delete(hashPart);
    this.paths.add(hashPart);
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
      if (this.knownAbsent(hashPart)) {
        this.miss(res, NOT_CACHED);
        this.stats.paths.miss(hashPart);
        return true;
      }
      return this.narinfo(method, hashPart, res).then(() => true);
    }
    if (pathname.startsWith('/') && parseNarUrl(pathname.slice(1))) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      return this.nar(method, pathname, req, res).then(() => true);
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

  /** The server's answer, or undefined after a network failure (recorded; the server is marked down). */
  private async ask(what: string, request: UpstreamRequest): Promise<UpstreamResponse | undefined> {
    try {
      return await this.server.request({ retry: PROXY_RETRY, ...request });
    } catch (e) {
      this.upstreamFailed(`${what} failed: ${describeNetworkError(e)}`, true);
      return undefined;
    }
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
    this.stats.hits++;
    if (method === 'GET') {
      this.links.noteHit(answer.narinfo);
      // Kept unparsed until a first NAR is streamed: used only if the server has no links.
      this.readahead.noteHit(answer.narinfo);
      this.prefetch.noteHit(hashPart, answer.narinfo);
    }
    res.writeHead(200, textHeaders('text/x-nix-narinfo', answer.narinfo));
    res.end(method === 'HEAD' ? undefined : answer.narinfo);
    return answer.narinfo;
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
      const response = await this.lookupRequest(narInfoBatchRequest(hashParts));
      if ('failed' in response) return everyone(response);
      const { status, text } = response;
      if (status === 200) {
        const narinfos = parseNarInfoBatch(text);
        if (!narinfos) {
          this.upstreamFailed(`narinfo lookup answered an unexpected body: ${text.slice(0, 100)}`, false);
          return everyone({ failed: 'the cache server answered something unexpected' });
        }
        return new Map(
          hashParts.map((hashPart) => {
            const narinfo = narinfos[hashPart];
            return [hashPart, typeof narinfo === 'string' ? { narinfo } : MISSING];
          }),
        );
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
        retry: PROXY_RETRY,
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

  private async nar(
    method: 'GET' | 'HEAD',
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (method === 'GET') {
      // The bytes go from the server to Nix: the redirect carries a link for this NAR alone.
      const location = await this.links.link(path);
      if (location) {
        this.stats.narRedirects++;
        this.stats.paths.narServed(path);
        res.writeHead(302, { location, 'cache-control': 'no-store', 'content-length': 0 });
        res.end();
        return;
      }
    }
    // A resumed download asks for the rest only: pass the range on, and the 206 back.
    const range = req.headers.range;
    if (method === 'GET' && !range && !this.links.available) {
      const nar = await this.readahead.take(path);
      if (nar) {
        this.stats.narsReadAhead++;
        this.stats.bytesDownloaded += nar.size;
        // The pages go back to the pool once the socket is done with them.
        res.once('close', nar.release);
        this.stats.paths.narServed(path);
        res.writeHead(200, forwardableHeaders(nar.headers));
        res.cork();
        for (const chunk of nar.chunks) res.write(chunk);
        res.end();
        return;
      }
    }
    const response = await this.ask('NAR download', {
      method,
      path,
      ...(range ? { headers: { range } } : {}),
    });
    if (!response) throw new HttpError(502, 'the cache server is unreachable', 'upstream');
    if (method === 'GET' && REDIRECTS.has(response.statusCode) && response.headers.location) {
      // The server sends NAR reads straight to its bucket (a presigned URL): Nix follows the
      // redirect itself, so the bytes pass through neither the server nor this proxy. Only to
      // https, or to plain http on loopback, as for the server itself.
      await response.body.dump();
      if (!isSafeRedirect(String(response.headers.location))) {
        this.upstreamFailed(`NAR download redirected to a URL that is not https: refused`, false);
        throw new HttpError(502, 'the cache server redirected to a URL that is not https', 'upstream');
      }
      this.stats.narRedirects++;
      res.writeHead(response.statusCode, {
        location: String(response.headers.location),
        'content-length': 0,
      });
      res.end();
      return;
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      const text = (await response.body.text()).slice(0, 200).trim();
      if (response.statusCode === 404) throw new HttpError(404, 'NAR not in the cache', 'not_found');
      if (response.statusCode === 416) throw new HttpError(416, 'range not satisfiable', 'range');
      this.upstreamFailed(`NAR download answered HTTP ${response.statusCode}: ${text}`, false);
      throw new HttpError(502, `the cache server answered HTTP ${response.statusCode}`, 'upstream');
    }
    res.writeHead(response.statusCode, forwardableHeaders(response.headers));
    if (method === 'HEAD') {
      await response.body.dump();
      res.end();
      return;
    }
    const counter = new ByteCounter((n) => (this.stats.bytesDownloaded += n));
    try {
      await pipeline(response.body, counter, res);
      if (response.statusCode === 200) this.stats.paths.narServed(path);
    } catch (e) {
      // Headers are sent: all that is left is to cut the connection so Nix sees a short NAR.
      this.upstreamFailed(`NAR download broke off: ${describeNetworkError(e)}`, false);
      res.destroy();
    }
  }
}

export function methodNotAllowed(method: string, allowed: string): HttpError {
  return new HttpError(405, `method ${method} is not allowed here; use ${allowed}`, 'method', {
    allow: allowed,
  });
}
