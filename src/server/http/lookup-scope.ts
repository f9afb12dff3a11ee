/**
 * A narinfo lookup's scope as a request states it (`?scope=` on GET/HEAD, `"scope"` in the batch
 * body; the contract is src/contracts/narinfo-batch.ts), and the access it narrows to.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import { NARINFO_LOOKUP_SCOPES, type NarInfoLookupScope } from '../../contracts/narinfo-batch.js';
import { readableBy, type SliceRank } from '../cache/union-read.js';
import type { Access } from './auth.js';
import { queryOf } from './paths.js';

/** A scope as a request names it (`where` says where, for the error); absent means the union. */
export function parseLookupScope(value: unknown, where: string): NarInfoLookupScope {
  if (value === undefined || value === null) return 'union';
  if (!NARINFO_LOOKUP_SCOPES.includes(value as NarInfoLookupScope)) {
    throw new HttpError(
      400,
      `${where} ${JSON.stringify(value)?.slice(0, 40)} is not one of ${NARINFO_LOOKUP_SCOPES.map((s) => `"${s}"`).join(', ')}`,
      'bad_scope',
    );
  }
  return value as NarInfoLookupScope;
}

/** The `?scope=` of a narinfo GET/HEAD. */
export function queryLookupScope(req: IncomingMessage): NarInfoLookupScope {
  return parseLookupScope(queryOf(req.url).get('scope'), 'query parameter scope');
}

/**
 * `access` narrowed to `scope`: for "write", only the slice that ranks first because it is the
 * token's own write slice (held by this writer). Without a write slice "write" names nothing.
 */
export function scopedAccess(access: Access, scope: NarInfoLookupScope): Access {
  if (scope === 'union') return access;
  if (access.write === null) {
    const why = access.authenticated
      ? 'this cache token grants no write slice'
      : 'the request has no cache token';
    throw new HttpError(
      400,
      `lookup scope "write" asks the token's write slice, but ${why}`,
      'no_write_slice',
    );
  }
  const rank: SliceRank = (slice, owner) => (access.rank(slice, owner) === 0 ? 0 : null);
  return { ...access, rank, canRead: readableBy(rank) };
}
