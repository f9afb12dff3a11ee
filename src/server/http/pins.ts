/**
 * `POST /_api/v1/pins`: the Action's daemon pins what its job pushed (input `pin: NAME`), with its
 * cache token: into the token's write slice only, so a pin is possible exactly where the policy
 * lets the job write. Body `{ "name": "v1.2", "paths": ["/nix/store/…"], "ttl": "1y" }`, and
 * `"skip_missing": true` to pin those of the paths the slice holds (the daemon sends every path
 * the job built; some were not pushed because another slice or an upstream cache has them).
 */
import { PIN_NAME_PATTERN } from '../../contracts/daemon-config.js';
import { HttpError } from '../../contracts/http-error.js';
import { StorePath } from '../../nix/store-path.js';
import type { CacheService } from '../cache/cache-service.js';
import type { PinRequest } from '../cache/pins.js';
import { parseDuration } from '../config/units.js';
import { readSmallBody } from './body.js';
import { beginWrite, send, type CacheRequest } from './cache-handlers.js';

const MAX_PATHS = 10_000;
const BODY_LIMIT = 2 * 1024 * 1024;

function bad(message: string): HttpError {
  return new HttpError(400, message, 'bad_pin');
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
  if (typeof json.name !== 'string' || !PIN_NAME_PATTERN.test(json.name))
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

export async function postPin(cache: CacheService, request: CacheRequest): Promise<void> {
  const writer = await beginWrite(cache, request, BODY_LIMIT, 'pin request');
  const pin = parsePinRequest(await readSmallBody(request, BODY_LIMIT, 'pin request'));
  const outcome = await cache.pin(writer, pin);
  send(
    request.res,
    201,
    { 'content-type': 'application/json' },
    JSON.stringify({
      slice: writer.slice,
      name: pin.name,
      paths: outcome.pinned,
      ...(outcome.missing ? { missing: outcome.missing } : {}),
      expires_at: outcome.expiresAt?.toISOString() ?? null,
    }),
  );
}
