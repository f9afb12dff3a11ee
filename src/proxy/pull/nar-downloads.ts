/**
 * NAR downloads for Nix: a redirect to a signed link for the NAR when the server hands them out
 * (nar-links.ts), else the bytes read ahead (readahead.ts) or streamed from the server. Both learn
 * from the narinfos Nix was given, since their NARs are what it asks for next.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../../contracts/http-error.js';
import type { Logger } from '../report/daemon-log.js';
import type { Stats } from '../report/stats.js';
import {
  describeNetworkError,
  type Upstream,
  type UpstreamRequest,
  type UpstreamResponse,
} from '../upstream/upstream-client.js';
import { ByteCounter } from './byte-counter.js';
import { isSafeRedirect, NarLinks } from './nar-links.js';
import { Readahead } from './readahead.js';
import { forwardableHeaders } from './response-headers.js';
import { PULL_RETRY } from '../upstream/retry.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class NarDownloads {
  private readonly readahead: Readahead;
  private readonly links: NarLinks;

  constructor(
    private readonly server: Upstream,
    private readonly stats: Stats,
    log: Logger,
    /** Records a failure; `network` marks the server down for a while. */
    private readonly failed: (message: string, network: boolean) => void,
  ) {
    this.readahead = new Readahead(server, log);
    this.links = new NarLinks(server, log);
  }

  /** Nix was given this narinfo: its NAR is what it asks next. */
  noteHit(narinfo: string): void {
    this.links.noteHit(narinfo);
    // Kept unparsed until a first NAR is streamed: used only if the server has no links.
    this.readahead.noteHit(narinfo);
  }

  /** Drops the NARs read ahead. */
  close(): void {
    this.readahead.close();
  }

  /** The server's answer, or undefined after a network failure (recorded; the server is marked down). */
  private async ask(what: string, request: UpstreamRequest): Promise<UpstreamResponse | undefined> {
    try {
      return await this.server.request({ retry: PULL_RETRY, ...request });
    } catch (e) {
      this.failed(`${what} failed: ${describeNetworkError(e)}`, true);
      return undefined;
    }
  }

  async serve(
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
        this.failed(`NAR download redirected to a URL that is not https: refused`, false);
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
      this.failed(`NAR download answered HTTP ${response.statusCode}: ${text}`, false);
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
      this.failed(`NAR download broke off: ${describeNetworkError(e)}`, false);
      res.destroy();
    }
  }
}
