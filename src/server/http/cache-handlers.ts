/**
 * The Nix binary cache protocol: nix-cache-info, narinfo and NAR reads from the union of readable
 * slices, and verified uploads into the token's write slice.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { HttpError } from '../../http/errors.js';
import { Hash } from '../../nix/hash.js';
import type { NarLimits } from '../../nix/nar-hasher.js';
import { NAR_EXTENSIONS, type NarCompression } from '../../nix/nar.js';
import { NarInfoError, parseNarInfo, serializeNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { StorePath } from '../../nix/store-path.js';
import type { Logger } from '../log.js';
import type { ServerMetrics } from '../metrics.js';
import type { ReadRecorder } from '../retention/access.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore, NarFacts } from '../storage/metadata-store.js';
import { requestToken, requireWriteSlice, type Access } from './auth.js';
import { acceptBody, checkDeclaredLength, readSmallBody } from './body.js';
import type { NarInfoSigner } from './narinfo-signer.js';
import { EXTENSION_COMPRESSION } from './paths.js';
import { parseRange } from './range.js';
import { verifyNarUpload, type NarUploadName } from './nar-upload.js';
import { lookupNarInfos, queryLookupScope, scopedAccess } from './narinfo-lookup.js';
import type { UploadSlots } from './upload-slots.js';

export interface CacheDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  narinfoSigner: NarInfoSigner;
  /** What a NAR upload may be: its size (as uploaded and inflated), ratio, decoder memory. */
  narLimits: NarLimits;
  uploadSlots: UploadSlots;
  metrics: ServerMetrics;
  log: Logger;
  /** The server's clock (ms): access times and pushes are recorded with it (injectable for tests). */
  now: () => number;
  reads: ReadRecorder;
}

export interface CacheRequest {
  req: IncomingMessage;
  res: ServerResponse;
  access(): Promise<Access>;
  /** The request body, failing with 408 when the client goes quiet. */
  body(): AsyncIterable<Buffer>;
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
export async function putNixCacheInfo({ req, res, body }: CacheRequest): Promise<void> {
  checkDeclaredLength(req, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
  acceptBody(req, res);
  await readSmallBody(body(), NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
  send(res, 204, {});
}

function notFound(what: string): HttpError {
  return new HttpError(404, `${what} not found`, 'not_found');
}

export async function getNarInfo(deps: CacheDeps, request: CacheRequest, hashPart: string): Promise<void> {
  const access = scopedAccess(await request.access(), queryLookupScope(request.req));
  const record = (await lookupNarInfos(deps, access, [hashPart])).get(hashPart);
  deps.metrics.narinfoLookups.inc({ result: record ? 'hit' : 'miss' });
  if (!record) throw notFound(`${hashPart}.narinfo`);
  const body = deps.narinfoSigner.served(record);
  send(
    request.res,
    200,
    { 'content-type': 'text/x-nix-narinfo', 'cache-control': 'private, no-cache' },
    body,
  );
}

/**
 * Whether the requester may see this NAR. Readers see NARs a readable narinfo points to. A writer's
 * HEAD answers from its own slice: if it said yes for a NAR only another slice holds, `nix copy`
 * would skip the upload and the narinfo would then be refused for lack of it.
 */
async function narVisible(deps: CacheDeps, access: Access, key: string, method: string): Promise<boolean> {
  const ownUpload =
    access.write !== null &&
    (await deps.meta.uploadedNar(access.write, key)) !== null &&
    (await holdsWriteSlice(deps, access, access.write));
  // A writer that sees the NAR will not upload it: mark it used so a collector leaves it alone
  // (or, when one is deleting it right now, say no so the writer uploads it again).
  if (method === 'HEAD' && access.write !== null)
    return ownUpload && (await deps.meta.touchNar(key, new Date(deps.now())));
  return ownUpload || (await deps.meta.isNarReadable(key, access.canRead));
}

/** Whether the write slice is this writer's: not bound yet, or bound to its issuer and repository. */
async function holdsWriteSlice(deps: CacheDeps, access: Access, slice: string): Promise<boolean> {
  if (!access.bindWrite) return true;
  const owner = await deps.meta.sliceOwner(slice);
  return owner === null || access.rank(slice, owner) === 0;
}

export async function getNar(deps: CacheDeps, request: CacheRequest, key: string): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  const head = (await narVisible(deps, access, key, req.method ?? 'GET')) ? await deps.blobs.head(key) : null;
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
  const body = await deps.blobs.open(key, range ?? undefined);
  if (!body) throw notFound(`nar/${key}`);
  res.writeHead(status, headers);
  try {
    await body.writeTo(res, (bytes) => deps.metrics.bytesOut.inc(bytes));
  } catch (error) {
    // The client went away mid-download: nothing to answer, nothing to report.
    if (!res.destroyed) throw error;
    return;
  }
  res.end();
}

/**
 * Refuses a write into a template slice that a job of another repository, or of another issuer,
 * wrote first (names change hands on GitHub; ids do not; two issuers may both have an `acme`).
 * Slices named in the config follow their write rules alone. Uploads only check; an accepted
 * narinfo binds the slice, so a refused request changes nothing.
 */
async function checkSliceOwner(deps: CacheDeps, access: Access, slice: string, bind: boolean): Promise<void> {
  if (!access.bindWrite) return;
  const { issuer = '', repositoryId = '', repositoryOwnerId = '' } = access.identity;
  const owner = bind
    ? await deps.meta.bindSlice(slice, { issuer, repositoryId, repositoryOwnerId })
    : await deps.meta.sliceOwner(slice);
  if (owner && owner.issuer !== issuer) {
    throw new HttpError(
      403,
      `slice '${slice}' belongs to a repository of another issuer ('${owner.issuer}')`,
      'slice_owner',
    );
  }
  if (owner && owner.repositoryId !== repositoryId) {
    throw new HttpError(
      403,
      `slice '${slice}' belongs to another repository (id ${owner.repositoryId})`,
      'slice_owner',
    );
  }
}

/**
 * Streams an upload through the verification into the BlobStore and records it for the write slice.
 * The answer depends only on the write slice's own uploads: 200 if it had uploaded this NAR before,
 * else 201, whether or not another slice holds the same file (which a writer must not learn).
 */
async function storeNarUpload(
  deps: CacheDeps,
  request: CacheRequest,
  nar: { key: string; compression: NarCompression; name: NarUploadName },
): Promise<{ outcome: 'created' | 'exists'; facts: NarFacts }> {
  const { req, res } = request;
  const access = await request.access();
  const slice = requireWriteSlice(access);
  checkDeclaredLength(req, deps.narLimits.maxNarSize, 'NAR file');
  await checkSliceOwner(deps, access, slice, false);
  await waitUntilNotDeleting(deps, nar.key);
  const release = deps.uploadSlots.acquire(requestToken(req) ?? '');
  try {
    const hadIt = (await deps.meta.uploadedNar(slice, nar.key)) !== null;
    acceptBody(req, res);
    const upload = verifyNarUpload(request.body(), {
      ...nar.name,
      compression: nar.compression,
      limits: deps.narLimits,
    });
    let stored: 'created' | 'exists';
    try {
      stored = await deps.blobs.put(nar.key, upload.body);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      if (req.readableAborted || (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
        throw new HttpError(400, 'the upload ended before its body was complete', 'truncated');
      }
      throw error;
    }
    const digest = upload.digest();
    deps.metrics.bytesIn.inc(digest.fileSize);
    // A key named by FileHash holds these very bytes. One named by NarHash is the slice's own
    // (narHashKey), but may hold other bytes it uploaded before (another compressor or level): the
    // narinfo must describe the file that is served, so that one is hashed.
    const file =
      stored === 'exists' && 'narHash' in nar.name ? await storedFileDigest(deps.blobs, nar.key) : digest;
    const facts: NarFacts = {
      key: nar.key,
      compression: nar.compression,
      fileHash: file.fileHash.toString(),
      fileSize: file.fileSize,
      narHash: digest.narHash.toString(),
      narSize: digest.narSize,
    };
    await deps.meta.recordUpload(slice, facts);
    deps.log.info({ slice, nar: nar.key, fileSize: facts.fileSize, stored }, 'NAR uploaded');
    return { outcome: hadIt ? 'exists' : 'created', facts };
  } finally {
    release();
  }
}

/**
 * The blob key of a NAR uploaded by its NarHash: one per slice and NAR. Keyed by the NarHash alone,
 * the first slice to upload a NAR would choose the bytes (and their size) every later uploader's
 * narinfo must describe, and a 200 would tell the next uploader that someone holds it. A file
 * named by its FileHash (Nix's uploads) is shared: the same name means the same bytes.
 */
export function narHashKey(slice: string, narHash: string, compression: NarCompression): string {
  const hash = Hash.of('sha256', Buffer.from(`sluice nar upload\0${slice}\0${narHash}`));
  return `${hash.nix32}.nar${NAR_EXTENSIONS[compression]}`;
}

/** How long an upload waits for a collector to finish deleting the same NAR file (a few ms normally). */
const DELETION_WAIT_MS = 10_000;

/** Marks the NAR as used by this upload; while a collector is deleting that key, waits for it. */
async function waitUntilNotDeleting(deps: CacheDeps, key: string): Promise<void> {
  const started = Date.now();
  while (!(await deps.meta.touchNar(key, new Date(deps.now())))) {
    if (Date.now() - started > DELETION_WAIT_MS)
      throw new HttpError(503, `NAR ${key} is being deleted by the collector: retry`, 'nar_deleting', {
        'retry-after': '1',
      });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function storedFileDigest(
  blobs: BlobStore,
  key: string,
): Promise<{ fileHash: Hash; fileSize: number }> {
  const body = await blobs.open(key);
  if (!body) throw new Error(`NAR file ${key} vanished while being uploaded again`);
  const hasher = createHash('sha256');
  let fileSize = 0;
  const sink = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      hasher.update(chunk);
      fileSize += chunk.length;
      done();
    },
  });
  await body.writeTo(sink);
  return { fileHash: new Hash('sha256', hasher.digest()), fileSize };
}

/** `PUT /nar/<filehash>.nar[.ext]`, as Nix uploads: the file must hash to its name. */
export async function putNar(
  deps: CacheDeps,
  request: CacheRequest,
  nar: { key: string; fileHash: string; compression: NarCompression },
): Promise<void> {
  const { outcome } = await storeNarUpload(deps, request, {
    key: nar.key,
    compression: nar.compression,
    name: { fileHash: Hash.parse(`sha256:${nar.fileHash}`) },
  });
  send(request.res, outcome === 'created' ? 201 : 200, {});
}

/**
 * `PUT /_api/v1/nar/<narhash>.nar[.ext]`, as the Action's proxy uploads: the NAR inside must hash to
 * the name, which the uploader knows before compressing, so it streams without a FileHash pass of
 * its own. It is stored under the slice's own key (narHashKey), and the answer tells the uploader
 * what its narinfo must say about the file: its URL, FileHash and FileSize.
 */
export async function putNarByNarHash(
  deps: CacheDeps,
  request: CacheRequest,
  nar: { narHash: string; compression: NarCompression },
): Promise<void> {
  const slice = requireWriteSlice(await request.access());
  const { outcome, facts } = await storeNarUpload(deps, request, {
    key: narHashKey(slice, nar.narHash, nar.compression),
    compression: nar.compression,
    name: { narHash: Hash.parse(`sha256:${nar.narHash}`) },
  });
  const body = JSON.stringify({
    url: `nar/${facts.key}`,
    compression: facts.compression,
    file_hash: facts.fileHash,
    file_size: facts.fileSize,
    nar_hash: facts.narHash,
    nar_size: facts.narSize,
  });
  send(request.res, outcome === 'created' ? 201 : 200, { 'content-type': 'application/json' }, body);
}

function mismatch(message: string, reason = 'narinfo_mismatch'): HttpError {
  return new HttpError(400, message, reason);
}

/** Checks a narinfo against the URL it was uploaded to and the NAR the slice uploaded; returns the NAR facts. */
async function checkNarInfo(
  deps: CacheDeps,
  slice: string,
  hashPart: string,
  info: NarInfo,
): Promise<NarFacts> {
  const storePath = StorePath.parse(info.storePath);
  if (storePath.hashPart !== hashPart) {
    throw mismatch(`StorePath ${info.storePath} does not match the uploaded name ${hashPart}.narinfo`);
  }
  const url = /^nar\/([0-9a-z]{52})\.nar(\.[a-z0-9]+)?$/.exec(info.url);
  if (!url) throw mismatch(`URL '${info.url}' is not nar/<hash>.nar[.zst|.xz]`);
  const key = info.url.slice('nar/'.length);
  const compression = EXTENSION_COMPRESSION[url[2] ?? ''];
  if (compression !== info.compression) {
    throw mismatch(`Compression '${info.compression}' does not match the URL '${info.url}'`);
  }
  const facts = await deps.meta.uploadedNar(slice, key);
  if (!facts)
    throw mismatch(
      `its NAR ${info.url} was not uploaded to slice '${slice}': upload the NAR first`,
      'nar_missing',
    );
  if (info.fileHash && !info.fileHash.equals(Hash.parse(facts.fileHash))) {
    throw mismatch(
      `FileHash ${info.fileHash.toString()} does not match the file uploaded (${facts.fileHash})`,
    );
  }
  if (info.fileSize !== undefined && info.fileSize !== facts.fileSize) {
    throw mismatch(`FileSize ${info.fileSize} does not match the ${facts.fileSize} bytes uploaded`);
  }
  if (!info.narHash.equals(Hash.parse(facts.narHash))) {
    throw mismatch(`NarHash ${info.narHash.toString()} does not match the uploaded NAR (${facts.narHash})`);
  }
  if (info.narSize !== facts.narSize) {
    throw mismatch(`NarSize ${info.narSize} does not match the uploaded NAR (${facts.narSize} bytes)`);
  }
  if (!(await deps.blobs.head(key))) throw mismatch(`its NAR ${info.url} is no longer stored`, 'nar_missing');
  return facts;
}

export async function putNarInfo(deps: CacheDeps, request: CacheRequest, hashPart: string): Promise<void> {
  const { req, res } = request;
  const access = await request.access();
  const slice = requireWriteSlice(access);
  checkDeclaredLength(req, NARINFO_UPLOAD_LIMIT, 'narinfo');
  await checkSliceOwner(deps, access, slice, false);
  acceptBody(req, res);
  const text = (await readSmallBody(request.body(), NARINFO_UPLOAD_LIMIT, 'narinfo')).toString('utf8');
  let info: NarInfo;
  try {
    info = parseNarInfo(text, { maxBytes: NARINFO_UPLOAD_LIMIT });
  } catch (error) {
    if (error instanceof NarInfoError)
      throw new HttpError(400, `malformed narinfo: ${error.message}`, 'bad_narinfo');
    throw error;
  }
  const facts = await checkNarInfo(deps, slice, hashPart, info);
  await checkSliceOwner(deps, access, slice, true);
  const now = new Date(deps.now());
  // The references this path needs in the slice count as used now, so a collection running at
  // this moment keeps them (its batch that holds one of them is refused).
  const references = info.references.map((name) => ({ slice, hashPart: name.slice(0, 32) }));
  await deps.meta.touchNarInfos(references, now);
  const stored: NarInfo = {
    ...info,
    url: `nar/${facts.key}`,
    fileHash: Hash.parse(facts.fileHash),
    fileSize: facts.fileSize,
    sigs: [],
  };
  const { identity } = access;
  // Signed once here, so the lookups that follow (the rest of this job, the next jobs) need not.
  const signed = deps.narinfoSigner.signForStorage(serializeNarInfo(stored));
  const outcome = await deps.meta.putNarInfo(
    {
      slice,
      hashPart,
      storePath: info.storePath,
      narKey: facts.key,
      narinfo: signed.narinfo,
      signedBy: signed.signedBy,
      createdAt: now,
    },
    {
      ...identity,
      time: now,
      slice,
      storePath: info.storePath,
      narSize: facts.narSize,
      fileSize: facts.fileSize,
    },
  );
  if (outcome === 'nar_missing')
    throw mismatch(
      `its NAR ${info.url} was removed by the collector meanwhile: upload it again`,
      'nar_missing',
    );
  deps.log.info(
    { slice, storePath: info.storePath, stored: outcome, repository: identity.repository },
    'narinfo uploaded',
  );
  send(res, outcome === 'created' ? 201 : 200, {});
}
