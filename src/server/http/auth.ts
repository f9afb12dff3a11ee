/**
 * Who is asking: the cache token from `Authorization: Bearer <token>` or from Basic auth, whose
 * password is the token (Nix 2.8 only sends Basic, from a netrc file; the username is ignored).
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import type { SliceFilter, WriterIdentity } from '../storage/metadata-store.js';
import { readableBy, withPublicSlices, type SliceRank } from '../cache/union-read.js';
import { exchangeErrorToHttp } from './exchange-status.js';
import type { CacheGrant } from '../exchange/index.js';

/** What a request may do, resolved from its token (or the lack of one). */
export interface Access {
  /** Whether the request carried a valid token. */
  authenticated: boolean;
  /** The precedence of the readable slices (src/server/union-read.ts); null for the others. */
  rank: SliceRank;
  canRead: SliceFilter;
  write: string | null;
  /** Bind the write slice to the writer's repository on its first accepted narinfo. */
  bindWrite: boolean;
  identity: WriterIdentity;
  /** The token's grant, when there is a token: what a signed NAR link carries. */
  grant?: CacheGrant;
}

/** Verifies a cache token; throws (any error) when the token is unusable. */
export type TokenVerifier = (token: string) => Promise<Omit<Access, 'authenticated' | 'canRead'>>;
/** Checks a grant a signed NAR link carried as the token's own check would (expiry, revocation). */
export type GrantVerifier = (grant: CacheGrant) => Promise<Omit<Access, 'authenticated' | 'canRead'>>;

/** The one reading of `Authorization: Bearer <token>`: the token ('' if empty), or undefined for another scheme. */
export function bearerCredential(header: string | undefined): string | undefined {
  const match = /^bearer(?:\s+(.*))?$/i.exec(header?.trim() ?? '');
  return match ? (match[1] ?? '').trim() : undefined;
}

/** The token in the request, or null when there is no Authorization header. */
export function requestToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header === undefined || header === '') return null;
  const bearer = bearerCredential(header);
  if (bearer !== undefined) {
    if (!bearer)
      throw new HttpError(401, 'empty Bearer token', 'bad_token', { 'www-authenticate': 'Bearer' });
    return bearer;
  }
  const space = header.indexOf(' ');
  const scheme = space === -1 ? header : header.slice(0, space);
  const value = space === -1 ? '' : header.slice(space + 1).trim();
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const password = colon === -1 ? '' : decoded.slice(colon + 1);
    if (!password)
      throw new HttpError(
        401,
        'Basic auth without a password: put the cache token in the password',
        'bad_token',
      );
    return password;
  }
  throw new HttpError(401, `unsupported Authorization scheme '${scheme}' (use Bearer or Basic)`, 'bad_token');
}

export async function resolveAccess(
  req: IncomingMessage,
  verify: TokenVerifier,
  isPublic: (slice: string) => boolean,
): Promise<Access> {
  const token = requestToken(req);
  if (token === null) {
    const rank = withPublicSlices(() => null, isPublic);
    return {
      authenticated: false,
      rank,
      canRead: readableBy(rank),
      write: null,
      bindWrite: false,
      identity: {},
    };
  }
  return verifiedAccess(() => verify(token), isPublic);
}

/** The access a signed NAR link's grant gives, checked as its token would be now. */
export function resolveGrantAccess(
  grant: CacheGrant,
  verify: GrantVerifier,
  isPublic: (slice: string) => boolean,
): Promise<Access> {
  return verifiedAccess(() => verify(grant), isPublic);
}

async function verifiedAccess(
  verify: () => Promise<Omit<Access, 'authenticated' | 'canRead'>>,
  isPublic: (slice: string) => boolean,
): Promise<Access> {
  let access: Omit<Access, 'authenticated' | 'canRead'>;
  try {
    access = await verify();
  } catch (caught) {
    const error = exchangeErrorToHttp(caught);
    if (error instanceof HttpError && error.status === 401) throw error; // already names the problem
    const reason = error instanceof Error ? error.message : String(error);
    throw new HttpError(401, `invalid cache token: ${reason}`, 'bad_token', { 'www-authenticate': 'Bearer' });
  }
  const rank = withPublicSlices(access.rank, isPublic);
  return { ...access, authenticated: true, rank, canRead: readableBy(rank) };
}

/** The write slice, or the reason there is none: 401 without a token, 403 with a read-only one. */
export function requireWriteSlice(access: Access): string {
  if (!access.authenticated) {
    throw new HttpError(401, 'uploads need a cache token with a write slice', 'unauthenticated', {
      'www-authenticate': 'Bearer',
    });
  }
  if (access.write === null)
    throw new HttpError(403, 'this cache token grants no write slice', 'read_only_token');
  return access.write;
}
