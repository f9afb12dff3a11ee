/**
 * Request paths → routes. Every name the protocol uses is plain ASCII (nix32 hashes, fixed
 * suffixes), so anything encoded, any dot segment or backslash is refused before routing: there is
 * no decoding step for a traversal to hide behind.
 */
import { HttpError } from '../../contracts/http-error.js';
import {
  NARINFO_BATCH_PATH,
  NARINFO_STREAM_PATH,
  RECENT_NARINFOS_PATH,
} from '../../contracts/narinfo-batch.js';
import { NAR_LINKS_PATH } from '../../contracts/nar-links.js';
import { NARINFO_SET_PATH } from '../../contracts/narinfo-set.js';
import { PATH_BATCH_PATH } from '../../contracts/path-batch.js';
import { HEALTH_PATH, NAR_UPLOAD_PREFIX, TOKEN_EXCHANGE_PATH } from '../../contracts/server-api.js';
import type { NarCompression } from '../../nix/nar.js';
import { parseNarFileName, type NarFileName } from '../../nix/nar-url.js';
import { HASH_PART_PATTERN } from '../../nix/store-path.js';

export type Route =
  | {
      name:
        | 'nix-cache-info'
        | 'health'
        | 'token'
        | 'metrics'
        | 'narinfos'
        | 'recent-narinfos'
        | 'narinfo-stream'
        | 'nar-links'
        | 'narinfo-set'
        | 'pins'
        | 'path-batch';
    }
  | { name: 'narinfo'; hashPart: string }
  | { name: 'nar'; fileHash: string; compression: NarCompression; key: string }
  | { name: 'nar-upload'; narHash: string; compression: NarCompression; key: string };

/** Repeatedly percent-decodes (bounded), so double encoding cannot hide a `..` or a separator. */
function fullyDecoded(path: string): string {
  let current = path;
  for (let i = 0; i < 4; i++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return current;
    }
    if (next === current) break;
    current = next;
  }
  return current;
}

/** A request target's query parameters (none for a target without `?`). */
export function queryOf(rawUrl: string | undefined): URLSearchParams {
  return new URL(rawUrl ?? '/', 'http://sluice.invalid').searchParams;
}

export function checkPath(rawUrl: string): string {
  if (!rawUrl.startsWith('/'))
    throw new HttpError(400, `request target '${rawUrl.slice(0, 100)}' is not a path`, 'bad_path');
  const path = rawUrl.split('?', 1)[0] as string;
  const decoded = fullyDecoded(path);
  if (
    decoded.includes('\\') ||
    decoded.split('/').some((segment) => segment === '..' || segment === '.') ||
    /\0/.test(decoded)
  ) {
    throw new HttpError(400, 'path traversal is not allowed', 'bad_path');
  }
  if (path.includes('%'))
    throw new HttpError(400, 'percent-encoded characters are not allowed in cache paths', 'bad_path');
  if (path.includes('//')) throw new HttpError(400, 'empty path segments are not allowed', 'bad_path');
  return path;
}

function compressionOf(name: NarFileName): NarCompression {
  if (name.compression === undefined) {
    throw new HttpError(
      400,
      `unsupported NAR compression '${name.extension}' (use .nar, .nar.zst or .nar.xz)`,
      'bad_name',
    );
  }
  return name.compression;
}

export function matchRoute(rawUrl: string): Route {
  const path = checkPath(rawUrl);
  switch (path) {
    case '/nix-cache-info':
      return { name: 'nix-cache-info' };
    case HEALTH_PATH:
      return { name: 'health' };
    case TOKEN_EXCHANGE_PATH:
      return { name: 'token' };
    case NARINFO_BATCH_PATH:
      return { name: 'narinfos' };
    case RECENT_NARINFOS_PATH:
      return { name: 'recent-narinfos' };
    case NARINFO_STREAM_PATH:
      return { name: 'narinfo-stream' };
    case NAR_LINKS_PATH:
      return { name: 'nar-links' };
    case NARINFO_SET_PATH:
      return { name: 'narinfo-set' };
    case '/metrics':
      return { name: 'metrics' };
    case '/_api/v1/pins':
      return { name: 'pins' };
    case PATH_BATCH_PATH:
      return { name: 'path-batch' };
  }
  const hashPart = path.endsWith('.narinfo') ? path.slice(1, -'.narinfo'.length) : undefined;
  if (hashPart !== undefined && HASH_PART_PATTERN.test(hashPart)) return { name: 'narinfo', hashPart };
  if (path.endsWith('.narinfo') && !path.slice(1).includes('/')) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not <32-character nix32 store path hash>.narinfo`,
      'bad_name',
    );
  }
  const nar = path.startsWith('/nar/') ? parseNarFileName(path.slice('/nar/'.length)) : undefined;
  if (nar) return { name: 'nar', fileHash: nar.hash, compression: compressionOf(nar), key: nar.key };
  if (path.startsWith('/nar/')) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not nar/<52-character nix32 sha256>.nar[.zst|.xz]`,
      'bad_name',
    );
  }
  const upload = path.startsWith(NAR_UPLOAD_PREFIX)
    ? parseNarFileName(path.slice(NAR_UPLOAD_PREFIX.length))
    : undefined;
  if (upload)
    return { name: 'nar-upload', narHash: upload.hash, compression: compressionOf(upload), key: upload.key };
  if (path.startsWith(NAR_UPLOAD_PREFIX)) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not ${NAR_UPLOAD_PREFIX.slice(1)}<52-character nix32 NarHash>.nar[.zst|.xz]`,
      'bad_name',
    );
  }
  throw new HttpError(404, `no such endpoint: ${path.slice(0, 120)}`, 'not_found');
}
