/**
 * The Nix binary cache protocol over HTTP: requests read, answers written, everything else asked
 * of the CacheService (src/server/cache/cache-service.ts). Every write passes one preamble.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import type { NarUploadResponse } from '../../contracts/server-api.js';
import { Hash } from '../../nix/hash.js';
import type { NarCompression } from '../../nix/nar.js';
import { NarInfoError, parseNarInfo, type NarInfo } from '../../nix/narinfo.js';
import type { CacheService, NarUpload, Writer } from '../cache/cache-service.js';
import type { NarUploadName } from '../cache/nar-verifier.js';
import { requireWriteSlice, type Access } from './auth.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import { parseRange } from './range.js';

export interface CacheRequest {
  req: IncomingMessage;
  res: ServerResponse;
  access(): Promise<Access>;
}

/** The upload limit for narinfos (and nix-cache-info), as the issue sets it. */
export const NARINFO_UPLOAD_LIMIT = 64 * 1024;

export const NIX_CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n';

export function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body = '',
): void {
  res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function getNixCacheInfo({ res }: CacheRequest): void {
  send(res, 200, { 'content-type': 'text/x-nix-cache-info' }, NIX_CACHE_INFO);
}

/** Nix PUTs a nix-cache-info when it finds none: ours is fixed, so the upload is read and dropped. */
export async function putNixCacheInfo({ req, res }: CacheRequest): Promise<void> {
  checkDeclaredLength(req, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
  acceptBody(req, res);
  await readSmallBody(req, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
  send(res, 204, {});
}

function notFound(what: string): HttpError {
  return new HttpError(404, `${what} not found`, 'not_found');
}

export async function getNarInfo(
  cache: CacheService,
  request: CacheRequest,
  hashPart: string,
): Promise<void> {
  const body = await cache.narInfo(hashPart, await request.access());
  if (body === undefined) throw notFound(`${hashPart}.narinfo`);
  send(
    request.res,
    200,
    { 'content-type': 'text/x-nix-narinfo', 'cache-control': 'private, no-cache' },
    body,
  );
}

export async function getNar(cache: CacheService, request: CacheRequest, key: string): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  const visible = await cache.narVisible(access, key, req.method === 'HEAD');
  const head = visible ? await cache.blobs.head(key) : null;
  if (!head) throw notFound(`nar/${key}`);
  const etag = `"${key}"`;
  const headers: Record<string, string | number> = {
    'content-type': 'application/x-nix-nar',
    'cache-control': 'private, max-age=31536000, immutable',
    etag,
    'accept-ranges': 'bytes',
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  const range = parseRange(req.headers.range, head.size);
  const status = range ? 206 : 200;
  const length = range ? range.end - range.start + 1 : head.size;
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${head.size}`;
  headers['content-length'] = length;
  if (req.method === 'HEAD') {
    res.writeHead(status, headers).end();
    return;
  }
  const body = await cache.blobs.open(key, range ?? undefined);
  if (!body) throw notFound(`nar/${key}`);
  res.writeHead(status, headers);
  try {
    await body.writeTo(res, (bytes) => cache.countBytesOut(bytes));
  } catch (error) {
    // The client went away mid-download: nothing to answer, nothing to report.
    if (!res.destroyed) throw error;
    return;
  }
  res.end();
}

/**
 * The preamble of every write, before its body is read: a token with a write slice, a declared
 * size within `limit`, a slice the writer may write; then `100 Continue`.
 */
async function beginWrite(
  cache: CacheService,
  request: CacheRequest,
  limit: number,
  what: string,
): Promise<Writer> {
  const access = await request.access();
  const writer: Writer = {
    slice: requireWriteSlice(access),
    bindWrite: access.bindWrite,
    identity: access.identity,
  };
  checkDeclaredLength(request.req, limit, what);
  await cache.checkWriter(writer);
  acceptBody(request.req, request.res);
  return writer;
}

async function storeNar(
  cache: CacheService,
  request: CacheRequest,
  nar: { key: string; compression: NarCompression; name: NarUploadName },
) {
  const writer = await beginWrite(cache, request, cache.maxNarSize, 'NAR file');
  const upload: NarUpload = nar;
  const { req } = request;
  return cache.storeNar(writer, upload, req, () => req.readableAborted);
}

/** `PUT /nar/<filehash>.nar[.ext]`, as Nix uploads: the file must hash to its name. */
export async function putNar(
  cache: CacheService,
  request: CacheRequest,
  nar: { key: string; fileHash: string; compression: NarCompression },
): Promise<void> {
  const { outcome } = await storeNar(cache, request, {
    key: nar.key,
    compression: nar.compression,
    name: { fileHash: Hash.parse(`sha256:${nar.fileHash}`) },
  });
  send(request.res, outcome === 'created' ? 201 : 200, {});
}

/**
 * `PUT /_api/v1/nar/<narhash>.nar[.ext]`, as the Action's proxy uploads: the NAR inside must hash to
 * the name, which the uploader knows before compressing, so it streams without a FileHash pass of
 * its own. The answer tells it what its narinfo must say about the file.
 */
export async function putNarByNarHash(
  cache: CacheService,
  request: CacheRequest,
  nar: { key: string; narHash: string; compression: NarCompression },
): Promise<void> {
  const { outcome, nar: stored } = await storeNar(cache, request, {
    key: nar.key,
    compression: nar.compression,
    name: { narHash: Hash.parse(`sha256:${nar.narHash}`) },
  });
  const answer: NarUploadResponse = {
    url: `nar/${stored.key}`,
    compression: stored.compression,
    file_hash: stored.fileHash.toString(),
    file_size: stored.fileSize,
    nar_hash: stored.narHash.toString(),
    nar_size: stored.narSize,
  };
  const body = JSON.stringify(answer);
  send(request.res, outcome === 'created' ? 201 : 200, { 'content-type': 'application/json' }, body);
}

export async function putNarInfo(
  cache: CacheService,
  request: CacheRequest,
  hashPart: string,
): Promise<void> {
  const writer = await beginWrite(cache, request, NARINFO_UPLOAD_LIMIT, 'narinfo');
  const text = (await readSmallBody(request.req, NARINFO_UPLOAD_LIMIT, 'narinfo')).toString('utf8');
  let info: NarInfo;
  try {
    info = parseNarInfo(text, { maxBytes: NARINFO_UPLOAD_LIMIT });
  } catch (error) {
    if (error instanceof NarInfoError)
      throw new HttpError(400, `malformed narinfo: ${error.message}`, 'bad_narinfo');
    throw error;
  }
  const outcome = await cache.storeNarInfo(writer, hashPart, info);
  send(request.res, outcome === 'created' ? 201 : 200, {});
}
