/**
 * What Nix sees: a binary cache at the daemon's address. `/nix-cache-info` is answered here;
 * narinfo lookups and NAR downloads go to the server with the token. Upstream trouble becomes a
 * 404 for narinfos (Nix then builds: a cache outage must not fail a build) and a 502 for NARs,
 * and is recorded in the stats.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../http/errors.js';
import { ByteCounter } from './byte-counter.js';
import { forwardableHeaders } from './headers.js';
import type { Logger } from './log.js';
import { Readahead } from './readahead.js';
import type { Stats } from './stats.js';
import {
  describeNetworkError,
  type Upstream,
  type UpstreamRequest,
  type UpstreamResponse,
} from './upstream.js';

/** Priority 30 sorts before cache.nixos.org (40), so Nix asks the proxy first. */
export const NIX_CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n';

const NARINFO_PATH = /^\/([0-9a-df-np-sv-z]{32})\.narinfo$/;
const NAR_PATH = /^\/nar\/[0-9a-z]+\.nar(\.[a-z0-9]+)?$/;
/** After a network failure, narinfo lookups answer 404 at once for this long instead of waiting again. */
const SERVER_DOWN_BACKOFF_MS = 10_000;
const NARINFO_TIMEOUT_MS = 15_000;
const PROXY_RETRY = { retries: 2, maxDelayMs: 1_000, maxRetryAfterMs: 2_000 };

export class CacheRoutes {
  /** Narinfo hash parts the server said it does not have: asked once per job. */
  private readonly misses = new Set<string>();
  private serverDownUntil = 0;
  private readonly readahead: Readahead;

  constructor(
    private readonly server: Upstream,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {
    this.readahead = new Readahead(server, log);
  }

  /** Drops the NARs fetched ahead. */
  close(): void {
    this.readahead.close();
  }

  /** The push engine just uploaded this narinfo: forget an earlier miss. */
  forgetMiss(hashPart: string): void {
    this.misses.delete(hashPart);
  }

  /** Answers the request if it is a cache route; false if not. */
  async handle(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
    const method = req.method ?? 'GET';
    if (pathname === '/nix-cache-info') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      res.writeHead(200, {
        'content-type': 'text/x-nix-cache-info',
        'content-length': NIX_CACHE_INFO.length,
      });
      res.end(method === 'HEAD' ? undefined : NIX_CACHE_INFO);
      return true;
    }
    const narinfo = NARINFO_PATH.exec(pathname);
    if (narinfo) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      await this.narinfo(method, narinfo[1]!, pathname, res);
      return true;
    }
    if (NAR_PATH.test(pathname)) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
      await this.nar(method, pathname, req, res);
      return true;
    }
    return false;
  }

  private miss(res: ServerResponse, why: string): void {
    this.stats.misses++;
    const body = `${why}\n`;
    res.writeHead(404, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
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

  private async narinfo(
    method: 'GET' | 'HEAD',
    hashPart: string,
    path: string,
    res: ServerResponse,
  ): Promise<void> {
    if (this.misses.has(hashPart)) return this.miss(res, 'not in the cache');
    if (Date.now() < this.serverDownUntil) return this.miss(res, 'the cache server is unreachable');
    const response = await this.ask('narinfo lookup', {
      method,
      path,
      signal: AbortSignal.timeout(NARINFO_TIMEOUT_MS),
    });
    if (!response) return this.miss(res, 'the cache server is unreachable');
    if (response.statusCode === 200) {
      const body = method === 'GET' ? Buffer.from(await response.body.arrayBuffer()) : undefined;
      if (method === 'HEAD') await response.body.dump();
      this.stats.hits++;
      if (body) this.readahead.noteHit(body.toString('latin1'));
      res.writeHead(200, {
        'content-type': 'text/x-nix-narinfo',
        ...(body ? { 'content-length': body.length } : {}),
      });
      res.end(body);
      return;
    }
    const text = (await response.body.text()).slice(0, 200).trim();
    if (response.statusCode === 404) {
      this.misses.add(hashPart);
      return this.miss(res, 'not in the cache');
    }
    this.upstreamFailed(`narinfo lookup answered HTTP ${response.statusCode}: ${text}`, false);
    return this.miss(res, `the cache server answered HTTP ${response.statusCode}`);
  }

  private async nar(
    method: 'GET' | 'HEAD',
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    // A resumed download asks for the rest only: pass the range on, and the 206 back.
    const range = req.headers.range;
    if (method === 'GET' && !range) {
      const nar = await this.readahead.take(path);
      if (nar) {
        this.stats.narsReadAhead++;
        this.stats.bytesDownloaded += nar.size;
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
