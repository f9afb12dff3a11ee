/**
 * NAR links (src/contracts/nar-links.ts): `POST /_api/v1/nar-links` answers, for each NAR the
 * request's token may read, where Nix may fetch it without the proxy: a presigned bucket URL, or
 * `nar/<file>?sig=…` on this server, which carries the token's read right for that NAR alone
 * (`NarLinkSigner`). A NAR GET with `?sig=` is read with the link's grant instead of a header.
 */
import { HttpError } from '../../contracts/http-error.js';
import { NAR_LINK_PARAM, NAR_LINKS_LIMIT, type NarLinksResponse } from '../../contracts/nar-links.js';
import { parseNarUrl } from '../../nix/nar-url.js';
import type { CacheService } from '../cache/cache-service.js';
import type { NarLinkSigner } from '../cache/nar-link-signer.js';
import { resolveGrantAccess, type Access, type GrantVerifier } from './auth.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import { send, type CacheRequest } from './cache-handlers.js';

/** 1000 NAR URLs as JSON are ~70 KB. */
export const NAR_LINKS_BODY_LIMIT = 128 * 1024;

export interface NarLinkDeps {
  cache: CacheService;
  signer: NarLinkSigner;
  verifyGrant: GrantVerifier;
  isPublic: (slice: string) => boolean;
}

function badRequest(message: string): HttpError {
  return new HttpError(400, message, 'bad_request');
}

/** `{"nars": ["nar/<file>", ...]}` → NAR URL → blob key, each checked; errors name the bad one. */
export function parseNarLinksRequest(body: Buffer): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw badRequest(`request body is not JSON: ${(error as Error).message}`);
  }
  const nars = (json as { nars?: unknown } | null)?.nars;
  if (typeof json !== 'object' || Array.isArray(json) || !Array.isArray(nars))
    throw badRequest('request body must be {"nars": ["nar/<52-character nix32 hash>.nar[.ext]", ...]}');
  if (nars.length > NAR_LINKS_LIMIT)
    throw new HttpError(413, `${nars.length} NARs in one request; at most ${NAR_LINKS_LIMIT}`, 'too_many');
  const keys = new Map<string, string>();
  nars.forEach((nar: unknown, index) => {
    const name = typeof nar === 'string' ? parseNarUrl(nar) : undefined;
    if (!name || name.compression === undefined)
      throw badRequest(
        `nars[${index}] ${JSON.stringify(nar)?.slice(0, 100)} is not nar/<52-character nix32 hash>.nar[.zst|.xz]`,
      );
    keys.set(nar as string, name.key);
  });
  return keys;
}

export async function postNarLinks(deps: NarLinkDeps, request: CacheRequest): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  checkDeclaredLength(req, NAR_LINKS_BODY_LIMIT, 'NAR link request');
  acceptBody(req, res);
  const keys = parseNarLinksRequest(await readSmallBody(request, NAR_LINKS_BODY_LIMIT, 'NAR link request'));
  const { cache, signer } = deps;
  const expiresAt = signer.expiry(access.grant, cache.narRedirectTtlSeconds);
  const links: Record<string, string> = {};
  await Promise.all(
    [...keys].map(async ([nar, key]) => {
      if (!(await cache.narVisible(access, key, false))) return;
      links[nar] =
        // A presigned URL lives exactly as long as the answer says its links do.
        (await cache.narRedirectUrl(key, expiresAt)) ??
        // Without a token only public slices are read: the plain URL needs nothing more.
        (access.grant
          ? `nar/${key}?${NAR_LINK_PARAM}=${signer.sign(key, access.grant, expiresAt)}`
          : `nar/${key}`);
    }),
  );
  const answer: NarLinksResponse = { links, expires_in: Math.max(0, expiresAt - signer.nowSeconds()) };
  send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(answer));
}

/** The `sig` of a NAR GET's query, if it has one. */
function linkSignature(url: string | undefined): string | undefined {
  const query = url?.split('?', 2)[1];
  return query === undefined ? undefined : (new URLSearchParams(query).get(NAR_LINK_PARAM) ?? undefined);
}

/**
 * The request as a NAR read sees it: with `?sig=`, the link's grant (checked now, as its token
 * would be) is the access, whatever else the request carries; otherwise the request's token.
 */
export function narReadRequest(deps: NarLinkDeps, request: CacheRequest, key: string): CacheRequest {
  const signature = linkSignature(request.req.url);
  if (signature === undefined) return request;
  let access: Promise<Access> | undefined;
  return {
    ...request,
    access: () =>
      (access ??= (async () =>
        resolveGrantAccess(deps.signer.verify(key, signature), deps.verifyGrant, deps.isPublic))()),
  };
}
