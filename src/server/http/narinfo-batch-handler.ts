/**
 * `POST /_api/v1/narinfos`: many narinfo lookups in one request, for the Action's proxy, which
 * gathers the lookups Nix makes at the same moment. The access rules are those of
 * `GET /<hash>.narinfo` (the union of readable slices, public slices without a token; only the
 * write slice with `"scope": "write"`); the answer holds the signed narinfo of every hit and nothing
 * for a miss. `GET /_api/v1/narinfos/recent` answers the same way with the narinfos used last.
 */
import { HttpError } from '../../contracts/http-error.js';
import { NARINFO_BATCH_LIMIT } from '../../contracts/narinfo-batch.js';
import { HASH_PART_PATTERN } from '../../nix/store-path.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import type { CacheService } from '../cache/cache-service.js';
import { send, type CacheRequest } from './cache-handlers.js';
import type { NarInfoLookupScope } from '../../contracts/narinfo-batch.js';
import { parseLookupScope, scopedAccess } from './lookup-scope.js';
import type { Access } from './auth.js';

/** 1000 hash parts as JSON are ~35 KB. */
export const NARINFO_BATCH_BODY_LIMIT = 64 * 1024;

const ANSWER_HEADERS = { 'content-type': 'application/json', 'cache-control': 'private, no-cache' };

function badRequest(message: string): HttpError {
  return new HttpError(400, message, 'bad_request');
}

/**
 * `{"hashParts": [...], "scope"?: "union" | "write"}` → the distinct hash parts, each checked, and
 * the scope; errors name the bad one.
 */
export function parseBatchRequest(body: Buffer): { hashParts: string[]; scope: NarInfoLookupScope } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw badRequest(`request body is not JSON: ${(error as Error).message}`);
  }
  return checkBatchJson(json, 'request body');
}

/** The same for a parsed JSON value (`what` names it in errors): a request body, or a stream's line. */
export function checkBatchJson(
  json: unknown,
  what: string,
): { hashParts: string[]; scope: NarInfoLookupScope } {
  const hashParts = (json as { hashParts?: unknown } | null)?.hashParts;
  if (typeof json !== 'object' || Array.isArray(json) || !Array.isArray(hashParts))
    throw badRequest(`${what} must be {"hashParts": ["<32-character nix32 hash>", ...]}`);
  if (hashParts.length > NARINFO_BATCH_LIMIT) {
    throw new HttpError(
      413,
      `${hashParts.length} hash parts in one request; at most ${NARINFO_BATCH_LIMIT}`,
      'too_many',
    );
  }
  hashParts.forEach((hashPart: unknown, index) => {
    if (typeof hashPart !== 'string' || !HASH_PART_PATTERN.test(hashPart)) {
      throw badRequest(
        `hashParts[${index}] ${JSON.stringify(hashPart)?.slice(0, 80)} is not a 32-character nix32 store path hash`,
      );
    }
  });
  const scope = parseLookupScope((json as { scope?: unknown }).scope, 'scope');
  return { hashParts: [...new Set(hashParts as string[])], scope };
}

/** A GET without a token is answered from public slices; with none, say what is missing. */
export async function lookupAccess(request: CacheRequest, publicReads: boolean): Promise<Access> {
  const access = await request.access();
  if (!access.authenticated && !publicReads) {
    throw new HttpError(401, 'narinfo lookups need a cache token: no slice is public', 'unauthenticated', {
      'www-authenticate': 'Bearer',
    });
  }
  return access;
}

export async function postNarInfos(
  cache: CacheService,
  request: CacheRequest,
  publicReads: boolean,
): Promise<void> {
  const { req, res } = request;
  const access = await lookupAccess(request, publicReads);
  checkDeclaredLength(req, NARINFO_BATCH_BODY_LIMIT, 'narinfo lookup request');
  acceptBody(req, res);
  const { hashParts, scope } = parseBatchRequest(
    await readSmallBody(request, NARINFO_BATCH_BODY_LIMIT, 'narinfo lookup request'),
  );
  const narinfos = await cache.narInfos(hashParts, scopedAccess(access, scope));
  send(res, 200, ANSWER_HEADERS, JSON.stringify({ narinfos }));
}

/**
 * `GET /_api/v1/narinfos/recent`: the narinfos of the readable slices used last, in the batch
 * answer's form (src/contracts/narinfo-batch.ts), by the same access rules.
 */
export async function getRecentNarInfos(
  cache: CacheService,
  request: CacheRequest,
  publicReads: boolean,
): Promise<void> {
  const narinfos = await cache.recentNarInfos(await lookupAccess(request, publicReads));
  send(request.res, 200, ANSWER_HEADERS, JSON.stringify({ narinfos }));
}
