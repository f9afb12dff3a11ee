/**
 * NAR links (src/contracts/nar-links.ts): the bytes of a NAR go from the server (or its bucket) to
 * Nix directly, not through this proxy. Nix's NAR GET is answered with a redirect to a link the
 * server made for the job's token: a short-lived URL that reads that one NAR, never the token.
 * Once Nix asks for a first NAR, the links of every narinfo hit it was given are asked for in one
 * request, so the NARs that follow are redirected from memory. A server without the route (older
 * than the daemon) is asked once; the NARs then stream through the proxy as before.
 */
import { NAR_LINKS_LIMIT, NAR_LINKS_PATH, parseNarLinksResponse } from '../../contracts/nar-links.js';
import { isLoopbackAddress } from '../../contracts/listen.js';
import type { Logger } from '../report/daemon-log.js';
import { describeNetworkError, type Upstream } from '../upstream/upstream-client.js';
import { Batcher } from './lookup-batcher.js';
import { PULL_RETRY } from '../upstream/retry.js';

/** A link is given to Nix only while it works at least this much longer (Nix follows it at once). */
const FRESH_MARGIN_MS = 20_000;
/** Narinfo hits remembered for asking their links; later ones are asked one by one. */
const MAX_CANDIDATES = 10_000;
const LINK_TIMEOUT_MS = 15_000;

/** An absolute https URL, or http on a loopback host (tests, a bucket on the same machine). */
export function isSafeRedirect(location: string): boolean {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return false;
  }
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackAddress(url.hostname));
}

interface Link {
  location: string;
  /** Local time (ms) until which it may be handed out. */
  freshUntil: number;
}

export class NarLinks {
  private readonly links = new Map<string, Link>();
  /** NAR paths (`/nar/…`) of the narinfo hits, in the order Nix was given them. */
  private readonly candidates = new Set<string>();
  private unsupported = false;
  /** Links asked for and not answered yet, by NAR path. */
  private readonly asking = new Map<string, Promise<Link | undefined>>();
  private readonly batches = new Batcher<Link>((paths) => this.fetch(paths), {
    maxBatch: NAR_LINKS_LIMIT,
    maxInFlight: 1,
  });

  constructor(
    private readonly server: Upstream,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** False once the server said it has no links: NARs then stream through the proxy. */
  get available(): boolean {
    return !this.unsupported;
  }

  /** A narinfo hit Nix was given: its NAR's link is asked for with the others. */
  noteHit(narinfo: string): void {
    const url = /^URL: (nar\/\S+)$/m.exec(narinfo)?.[1];
    if (url && this.candidates.size < MAX_CANDIDATES) this.candidates.add(`/${url}`);
  }

  /** Where Nix may fetch the NAR at `path` (`/nar/…`) itself, or undefined: stream it. */
  async link(path: string): Promise<string | undefined> {
    if (this.unsupported) return undefined;
    const known = this.fresh(path);
    if (known) return known.location;
    const asked = this.ask(path);
    // With it, every other hit without a fresh link: one request for the closure, not one per NAR.
    for (const other of this.candidates) if (!this.fresh(other)) void this.ask(other);
    return (await asked)?.location;
  }

  /** The link being asked for, or a new request for it: a path is never in two batches at once. */
  private ask(path: string): Promise<Link | undefined> {
    let asking = this.asking.get(path);
    if (!asking) {
      asking = this.batches
        .lookup(path)
        .catch(() => undefined)
        .finally(() => this.asking.delete(path));
      this.asking.set(path, asking);
    }
    return asking;
  }

  private fresh(path: string): Link | undefined {
    const link = this.links.get(path);
    return link && link.freshUntil > this.now() ? link : undefined;
  }

  private async fetch(paths: string[]): Promise<Map<string, Link>> {
    const found = new Map<string, Link>();
    if (this.unsupported) return found;
    const asked = this.now();
    let response;
    try {
      response = await this.server.requestText({
        method: 'POST',
        path: NAR_LINKS_PATH,
        headers: { 'content-type': 'application/json' },
        body: () => JSON.stringify({ nars: paths.map((path) => path.slice(1)) }),
        retry: PULL_RETRY,
        signal: AbortSignal.timeout(LINK_TIMEOUT_MS),
      });
    } catch (error) {
      this.log.warn({ err: describeNetworkError(error) }, 'NAR links failed: NARs stream through the proxy');
      return found;
    }
    if (response.statusCode === 404 || response.statusCode === 405) {
      this.unsupported = true;
      this.log.info(
        { status: response.statusCode },
        'the cache server has no NAR links: NARs stream through the proxy',
      );
      return found;
    }
    const answer = response.statusCode === 200 ? parseNarLinksResponse(response.text) : undefined;
    if (!answer) {
      // A 200's body may hold signed links, and the post step prints this log: its size only.
      const body =
        response.statusCode === 200 ? { bytes: response.text.length } : { body: response.text.slice(0, 200) };
      this.log.warn(
        { status: response.statusCode, ...body },
        'NAR links answered unexpectedly: NARs stream through the proxy',
      );
      return found;
    }
    const freshUntil = asked + answer.expiresInSeconds * 1000 - FRESH_MARGIN_MS;
    const base = this.server.baseUrl.replace(/\/+$/, '');
    for (const [nar, link] of answer.links) {
      // A path below the server's URL, or an absolute URL (a presigned bucket), only https or loopback.
      const location = /^[a-z][a-z0-9+.-]*:/i.test(link) ? link : `${base}/${link}`;
      if (!isSafeRedirect(location)) {
        this.log.warn({ nar }, 'NAR link is not https: not used');
        continue;
      }
      const entry = { location, freshUntil };
      this.links.set(`/${nar}`, entry);
      found.set(`/${nar}`, entry);
    }
    return found;
  }
}
