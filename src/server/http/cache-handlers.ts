/**
 * The Nix binary cache protocol over HTTP: requests read, answers written, everything else asked
 * of the CacheService (src/server/cache/cache-service.ts). Every write passes one preamble.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import {
  ACCEL_REQUEST_HEADER,
  NAR_UPLOAD_WITHOUT_FILE_HASH,
  type NarUploadResponse,
} from '../../contracts/server-api.js';
import { releasedAfterUse } from '../../nix/buffer-pool.js';
import { Hash } from '../../nix/hash.js';
import type { NarCompression } from '../../nix/nar.js';
import { NarInfoError, parseNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { narHashKey, type CacheService, type NarUpload, type Writer } from '../cache/cache-service.js';
import type { VerifiedNar } from '../cache/verified-nar.js';
import type { BlobReader } from '../storage/blob-store.js';
import { requestToken, requireWriteSlice, type Access } from './auth.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import { parseRange } from './range.js';
import { queryLookupScope, scopedAccess } from './lookup-scope.js';
import type { UploadSlots } from './upload-slots.js';
import { queryOf } from './paths.js';

/** Narinfos can change which slice answers (a new push, a policy change): a CDN may keep them briefly. */
export const NARINFO_MAX_AGE_SECONDS = 60;

/**
 * Caching for answers that depend on who asks: `public` only for requests without a token (what
 * they see, public slices hold, so a shared cache may keep it), `private` otherwise.
 */
function cacheScope(access: Access): 'public' | 'private' {
  return access.authenticated ? 'private' : 'public';
}

export interface CacheRequest {
  req: IncomingMessage;
  res: ServerResponse;
  access(): Promise<Access>;
  /** The request body, failing with 408 when the client goes quiet. */
  body(): AsyncIterable<Buffer>;
  /** How long the body may send nothing before it is abandoned (408). */
  bodyIdleTimeoutMs: number;
}

/** What the NAR upload routes need besides the cache: the slots that bound uploads in progress. */
export interface UploadDeps {
  cache: CacheService;
  uploadSlots: UploadSlots;
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
export async function putNixCacheInfo(request: CacheRequest): Promise<void> {
  const { req, res } = request;
  checkDeclaredLength(req, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
  acceptBody(req, res);
  await readSmallBody(request, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
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
  const access = scopedAccess(await request.access(), queryLookupScope(request.req));
  const body = await cache.narInfo(hashPart, access);
  if (body === undefined) throw notFound(`${hashPart}.narinfo`);
  send(
    request.res,
    200,
    {
      'content-type': 'text/x-nix-narinfo',
      'cache-control': `${cacheScope(access)}, max-age=${NARINFO_MAX_AGE_SECONDS}`,
    },
    body,
  );
}

export async function getNar(cache: CacheService, request: CacheRequest, key: string): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  const visible = await cache.narVisible(access, key, req.method === 'HEAD');
  const redirect =
    visible && req.method === 'GET' ? await cache.narRedirectUrl(key, access.grant?.expiresAt) : undefined;
  if (redirect !== undefined) {
    // The bytes come from the bucket, not through this server. The redirect itself lives only as
    // long as its signature, so nothing may keep it.
    res.writeHead(302, { location: redirect, 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
    return;
  }
  if (!visible) throw notFound(`nar/${key}`);
  const etag = `"${key}"`;
  const headers: Record<string, string | number> = {
    'content-type': 'application/x-nix-nar',
    // Content-addressed: the bytes under this name never change.
    'cache-control': `${cacheScope(access)}, max-age=31536000, immutable`,
    etag,
    'accept-ranges': 'bytes',
  };
  if (req.method === 'GET' && req.headers.range === undefined && req.headers['if-none-match'] !== etag) {
    const accel = req.headers[ACCEL_REQUEST_HEADER] === 'on' ? cache.narAccelPath(key) : undefined;
    if (accel !== undefined) {
      // nginx sends the file with sendfile, keeping this answer's Content-Type and Cache-Control;
      // a file gone meanwhile is its 404.
      res.writeHead(200, { ...headers, 'x-accel-redirect': accel, 'content-length': 0 }).end();
      return;
    }
    // A plain GET, nearly every download: opened at once, its size taken from the open blob. A
    // head first cost a trip to the thread pool (on S3, a request to the bucket) per NAR.
    const body = await cache.blobs.open(key);
    if (!body) throw notFound(`nar/${key}`);
    headers['content-length'] = body.length;
    return sendBlob(cache, res, 200, headers, body);
  }
  const head = await cache.blobs.head(key);
  if (!head) throw notFound(`nar/${key}`);
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  const range = parseRange(req.headers.range, head.size);
  const status = range ? 206 : 200;
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${head.size}`;
  headers['content-length'] = range ? range.end - range.start + 1 : head.size;
  if (req.method === 'HEAD') {
    res.writeHead(status, headers).end();
    return;
  }
  const body = await cache.blobs.open(key, range ?? undefined);
  if (!body) throw notFound(`nar/${key}`);
  return sendBlob(cache, res, status, headers, body);
}

async function sendBlob(
  cache: CacheService,
  res: ServerResponse,
  status: number,
  headers: Record<string, string | number>,
  body: BlobReader,
): Promise<void> {
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
 * size within `limit`, a slice the writer may write; then `100 Continue` (unless `accept` is false:
 * the caller sends it once it has taken what else the write needs).
 */
export async function beginWrite(
  cache: CacheService,
  request: CacheRequest,
  limit: number,
  what: string,
  accept = true,
): Promise<Writer> {
  const access = await request.access();
  const writer: Writer = {
    slice: requireWriteSlice(access),
    bindWrite: access.bindWrite,
    identity: access.identity,
  };
  checkDeclaredLength(request.req, limit, what);
  await cache.checkWriter(writer);
  if (accept) acceptBody(request.req, request.res);
  return writer;
}

/** A NAR upload: the preamble, an upload slot (429/503 when none is free), then the service. */
async function storeNar(
  deps: UploadDeps,
  request: CacheRequest,
  writer: Writer,
  upload: NarUpload,
): Promise<{ outcome: 'created' | 'exists'; nar: VerifiedNar }> {
  const { req, res } = request;
  await deps.cache.markNarInUse(upload.key);
  const release = deps.uploadSlots.acquire(requestToken(req) ?? '');
  try {
    acceptBody(req, res);
    return await deps.cache.storeNar(writer, upload, releasedAfterUse(request.body()));
  } finally {
    release();
  }
}

/** `PUT /nar/<filehash>.nar[.ext]`, as Nix uploads: the file must hash to its name. */
export async function putNar(
  deps: UploadDeps,
  request: CacheRequest,
  nar: { key: string; fileHash: string; compression: NarCompression },
): Promise<void> {
  const writer = await beginWrite(deps.cache, request, deps.cache.maxNarSize, 'NAR file', false);
  const { outcome } = await storeNar(deps, request, writer, {
    key: nar.key,
    compression: nar.compression,
    name: { fileHash: Hash.parse(`sha256:${nar.fileHash}`) },
  });
  send(request.res, outcome === 'created' ? 201 : 200, {});
}

/**
 * Whether a NAR upload by NarHash wants the file's FileHash: yes unless its query is
 * NAR_UPLOAD_WITHOUT_FILE_HASH (older proxies send no query and put the FileHash in their narinfos).
 */
function wantsFileHash(url: string | undefined): boolean {
  const query = queryOf(url);
  if (query.size === 0) return true;
  if (query.toString() === NAR_UPLOAD_WITHOUT_FILE_HASH) return false;
  throw new HttpError(
    400,
    `the NAR upload's query must be '${NAR_UPLOAD_WITHOUT_FILE_HASH}' or none`,
    'bad_query',
  );
}

/**
 * `PUT /_api/v1/nar/<narhash>.nar[.ext]`, as the Action's proxy uploads: the NAR inside must hash to
 * the name, which the uploader knows before compressing, so it streams without a FileHash pass of
 * its own. It is stored under the slice's own key (narHashKey), and the answer tells the uploader
 * what its narinfo must say about the file: its URL, FileSize and (unless it asked for none) FileHash.
 */
export async function putNarByNarHash(
  deps: UploadDeps,
  request: CacheRequest,
  nar: { narHash: string; compression: NarCompression },
): Promise<void> {
  const writer = await beginWrite(deps.cache, request, deps.cache.maxNarSize, 'NAR file', false);
  const hashFile = wantsFileHash(request.req.url);
  const { outcome, nar: stored } = await storeNar(deps, request, writer, {
    key: narHashKey(writer.slice, nar.narHash, nar.compression),
    compression: nar.compression,
    name: { narHash: Hash.parse(`sha256:${nar.narHash}`), hashFile },
  });
  const answer: NarUploadResponse = {
    url: `nar/${stored.key}`,
    compression: stored.compression,
    ...(stored.fileHash && { file_hash: stored.fileHash.toString() }),
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
  const text = (await readSmallBody(request, NARINFO_UPLOAD_LIMIT, 'narinfo')).toString('utf8');
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
