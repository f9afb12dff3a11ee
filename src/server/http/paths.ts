/**
 * Request paths → routes. Every name the protocol uses is plain ASCII (nix32 hashes, fixed
 * suffixes), so anything encoded, any dot segment or backslash is refused before routing: there is
 * no decoding step for a traversal to hide behind.
 */
import { HttpError } from '../../http/errors.js';
import { NARINFO_BATCH_PATH } from '../../http/narinfo-batch.js';
import type { NarCompression } from '../../nix/nar.js';

const NIX32 = '[0-9abcdfghijklmnpqrsvwxyz]';
const NARINFO = new RegExp(`^/(${NIX32}{32})\\.narinfo$`);
const NAR = new RegExp(`^/nar/(${NIX32}{52})\\.nar(\\.[a-z0-9]+)?$`);
/** Sluice's own upload route: the NAR file named by the NarHash of the NAR inside it. */
const NAR_UPLOAD_PREFIX = '/_api/v1/nar/';
const NAR_UPLOAD = new RegExp(`^${NAR_UPLOAD_PREFIX}(${NIX32}{52})\\.nar(\\.[a-z0-9]+)?$`);

export const EXTENSION_COMPRESSION: Record<string, NarCompression> = {
  '': 'none',
  '.zst': 'zstd',
  '.xz': 'xz',
};

export type Route =
  | { name: 'nix-cache-info' | 'health' | 'token' | 'metrics' | 'narinfos' | 'pins' }
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

function compressionOf(extension = ''): NarCompression {
  const compression = EXTENSION_COMPRESSION[extension];
  if (compression === undefined) {
    throw new HttpError(
      400,
      `unsupported NAR compression '${extension}' (use .nar, .nar.zst or .nar.xz)`,
      'bad_name',
    );
  }
  return compression;
}

export function matchRoute(rawUrl: string): Route {
  const path = checkPath(rawUrl);
  switch (path) {
    case '/nix-cache-info':
      return { name: 'nix-cache-info' };
    case '/_api/v1/health':
      return { name: 'health' };
    case '/_api/v1/token':
      return { name: 'token' };
    case NARINFO_BATCH_PATH:
      return { name: 'narinfos' };
    case '/metrics':
      return { name: 'metrics' };
    case '/_api/v1/pins':
      return { name: 'pins' };
  }
  const narinfo = NARINFO.exec(path);
  if (narinfo) return { name: 'narinfo', hashPart: narinfo[1] as string };
  if (path.endsWith('.narinfo') && !path.slice(1).includes('/')) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not <32-character nix32 store path hash>.narinfo`,
      'bad_name',
    );
  }
  const nar = NAR.exec(path);
  if (nar) {
    const compression = compressionOf(nar[2]);
    return { name: 'nar', fileHash: nar[1] as string, compression, key: path.slice('/nar/'.length) };
  }
  if (path.startsWith('/nar/')) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not nar/<52-character nix32 sha256>.nar[.zst|.xz]`,
      'bad_name',
    );
  }
  const upload = NAR_UPLOAD.exec(path);
  if (upload) {
    const compression = compressionOf(upload[2]);
    return {
      name: 'nar-upload',
      narHash: upload[1] as string,
      compression,
      key: path.slice(NAR_UPLOAD_PREFIX.length),
    };
  }
  if (path.startsWith(NAR_UPLOAD_PREFIX)) {
    throw new HttpError(
      400,
      `'${path.slice(1, 120)}' is not ${NAR_UPLOAD_PREFIX.slice(1)}<52-character nix32 NarHash>.nar[.zst|.xz]`,
      'bad_name',
    );
  }
  throw new HttpError(404, `no such endpoint: ${path.slice(0, 120)}`, 'not_found');
}
