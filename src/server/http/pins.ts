/**
 * `POST /_api/v1/pins`: the Action's daemon pins what its job pushed (input `pin: NAME`), with its
 * cache token: into the token's write slice only, so a pin is possible exactly where the policy
 * lets the job write. Body `{ "name": "v1.2", "paths": ["/nix/store/…"], "ttl": "1y" }`, and
 * `"skip_missing": true` to pin those of the paths the slice holds (the daemon sends every path
 * the job built; some were not pushed because another slice or an upstream cache has them).
 */
import { HttpError } from '../../http/errors.js';
import { StorePath } from '../../nix/store-path.js';
import { parseDuration } from '../config.js';
import { requireWriteSlice } from './auth.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import { send, type CacheDeps, type CacheRequest } from './cache-handlers.js';

export const PIN_NAME = /^[A-Za-z0-9._@+-]{1,100}$/;
const MAX_PATHS = 10_000;
const BODY_LIMIT = 2 * 1024 * 1024;

function bad(message: string): HttpError {
  return new HttpError(400, message, 'bad_pin');
}

interface PinRequest {
  name: string;
  paths: string[];
  ttlSeconds?: number;
  skipMissing: boolean;
}

export function parsePinRequest(body: Buffer): PinRequest {
  let json: { name?: unknown; paths?: unknown; ttl?: unknown; skip_missing?: unknown };
  try {
    json = JSON.parse(body.toString('utf8')) as typeof json;
  } catch (error) {
    throw bad(`request body is not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw bad('request body must be {"name": "...", "paths": ["/nix/store/..."], "ttl"?: "1y"}');
  if (typeof json.name !== 'string' || !PIN_NAME.test(json.name))
    throw bad(`pin name ${JSON.stringify(json.name)} must be 1-100 letters, digits, . _ @ + -`);
  if (!Array.isArray(json.paths) || json.paths.length === 0)
    throw bad('paths must be a non-empty list of store paths');
  if (json.paths.length > MAX_PATHS) throw bad(`${json.paths.length} paths in one pin; at most ${MAX_PATHS}`);
  const paths = json.paths.map((path: unknown, index) => {
    try {
      return StorePath.parse(String(path)).toPath();
    } catch (error) {
      throw bad(
        `paths[${index}] ${JSON.stringify(path)?.slice(0, 120)} is not a store path: ${(error as Error).message}`,
      );
    }
  });
  let ttlSeconds: number | undefined;
  if (json.ttl !== undefined) {
    try {
      ttlSeconds = parseDuration(json.ttl);
    } catch (error) {
      throw bad(`ttl: ${(error as Error).message}`);
    }
  }
  if (json.skip_missing !== undefined && typeof json.skip_missing !== 'boolean')
    throw bad('skip_missing must be true or false');
  return {
    name: json.name,
    paths: [...new Set(paths)],
    ...(ttlSeconds ? { ttlSeconds } : {}),
    skipMissing: json.skip_missing === true,
  };
}

export async function postPin(deps: CacheDeps, request: CacheRequest): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  const slice = requireWriteSlice(access);
  checkDeclaredLength(req, BODY_LIMIT, 'pin request');
  acceptBody(req, res);
  const pin = parsePinRequest(await readSmallBody(req, BODY_LIMIT, 'pin request'));
  const rows = await deps.meta.findNarInfos(
    pin.paths.map((path) => path.slice(11, 43)),
    (candidate) => candidate === slice,
  );
  const found = new Set(rows.map((row) => row.hashPart));
  const missing = pin.paths.filter((path) => !found.has(path.slice(11, 43)));
  const present = pin.paths.filter((path) => found.has(path.slice(11, 43)));
  if (missing.length > 0 && (!pin.skipMissing || present.length === 0)) {
    throw new HttpError(
      400,
      `${missing.length} of the paths are not in slice '${slice}' (push them first): ${missing.slice(0, 5).join(', ')}`,
      'pin_missing_path',
    );
  }
  const now = deps.now();
  const expiresAt = pin.ttlSeconds ? new Date(now + pin.ttlSeconds * 1000) : null;
  await deps.meta.putPin({
    slice,
    name: pin.name,
    storePaths: pin.paths,
    createdAt: new Date(now),
    expiresAt,
  });
  deps.log.info({ slice, pin: pin.name, paths: pin.paths.length, expiresAt }, 'pin added');
  send(
    res,
    201,
    { 'content-type': 'application/json' },
    JSON.stringify({
      slice,
      name: pin.name,
      paths: present.length,
      ...(missing.length ? { missing: missing.length } : {}),
      expires_at: expiresAt?.toISOString() ?? null,
    }),
  );
}
