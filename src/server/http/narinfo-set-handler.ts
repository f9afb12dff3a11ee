/**
 * `GET /_api/v1/narinfo-set[?since=<cursor>]`: the hash prefixes of the narinfos the token may read
 * (src/contracts/narinfo-set.ts), for the Action's proxy, which answers most of Nix's misses from
 * it. The access rules are those of the narinfo lookups (the union of readable slices, public
 * slices without a token).
 */
import { HttpError } from '../../contracts/http-error.js';
import { NARINFO_SET_CONTENT_TYPE, SET_CURSOR_PATTERN } from '../../contracts/narinfo-set.js';
import type { CacheService } from '../cache/cache-service.js';
import type { CacheRequest } from './cache-handlers.js';
import { queryOf } from './paths.js';

/** The largest cursor any store hands out (xid8 and SQLite integers both fit below 2^63). */
const CURSOR_LIMIT = 2n ** 63n;

/** `?since=`: absent for the whole set, else a cursor an earlier answer gave. */
export function parseSince(url: string | undefined): string | null {
  const since = queryOf(url).get('since');
  if (since === null) return null;
  if (!SET_CURSOR_PATTERN.test(since) || BigInt(since) >= CURSOR_LIMIT) {
    throw new HttpError(
      400,
      `query parameter since ${JSON.stringify(since.slice(0, 40))} is not a cursor (the digits of an earlier answer's "cursor")`,
      'bad_cursor',
    );
  }
  return since;
}

export async function getNarInfoSet(
  cache: CacheService,
  request: CacheRequest,
  publicReads: boolean,
): Promise<void> {
  const { req, res } = request;
  const since = parseSince(req.url);
  const access = await request.access();
  if (!access.authenticated && !publicReads) {
    throw new HttpError(401, 'the narinfo set needs a cache token: no slice is public', 'unauthenticated', {
      'www-authenticate': 'Bearer',
    });
  }
  const { body, count } = await cache.narInfoSet(access, since);
  res.writeHead(200, {
    'content-type': NARINFO_SET_CONTENT_TYPE,
    'content-length': body.length,
    'cache-control': 'private, no-store',
    'x-sluice-set-count': count,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
