/**
 * `POST /_api/v1/paths` (src/contracts/path-batch.ts): the Action's proxy pushes small store paths
 * many to a request. Each NAR goes through the very checks of `PUT /_api/v1/nar/<narhash>…` as it
 * streams by; only once every NAR of the batch is in are the narinfos stored, through the checks of
 * `PUT /<hash>.narinfo`, in the order sent. A batch with a bad entry stores no narinfo: its NARs
 * that came before stay as uploads without one, as after a job cancelled between the two requests.
 */
import { HttpError } from '../../contracts/http-error.js';
import {
  PATH_BATCH_MAX_HEADER_BYTES,
  PATH_BATCH_MAX_PATHS,
  type PathBatchResponse,
  type PathBatchResult,
} from '../../contracts/path-batch.js';
import { Hash, HashError } from '../../nix/hash.js';
import { checkCompression, CompressionError } from '../../nix/nar.js';
import { NarInfoError, parseNarInfo, serializeNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { StorePath } from '../../nix/store-path.js';
import { narHashKey, type NarUpload } from '../cache/cache-service.js';
import { narSizeMismatch } from '../cache/narinfo-check.js';
import { requestToken } from './auth.js';
import { acceptBody } from './body.js';
import {
  beginWrite,
  send,
  NARINFO_UPLOAD_LIMIT,
  type CacheRequest,
  type UploadDeps,
} from './cache-handlers.js';
import { FramedBody } from './framed-body.js';

const WHAT = 'path batch';

/** A path of the batch as its header line states it: the narinfo but for the file, and the upload. */
interface BatchEntry {
  info: NarInfo;
  upload: NarUpload;
  fileSize: number;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isSize = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/**
 * A header line → the path's narinfo (its URL the slice's own key; FileSize follows from the bytes;
 * no FileHash) and its upload. The narinfo is written and parsed back, so it passes the parser a
 * narinfo upload passes; a 400 names what is wrong.
 */
function parseEntry(line: string, slice: string): BatchEntry {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'its header line is not JSON', 'bad_batch');
  }
  const { store_path, nar_hash, nar_size, references, deriver, ca, compression, file_size } = json ?? {};
  if (
    !isString(store_path) ||
    !isString(nar_hash) ||
    !isSize(nar_size) ||
    !Array.isArray(references) ||
    !references.every(isString) ||
    !(deriver === undefined || isString(deriver)) ||
    !(ca === undefined || isString(ca)) ||
    !isString(compression) ||
    !isSize(file_size)
  ) {
    throw new HttpError(
      400,
      'its header line lacks a field or has one of the wrong type (store_path, nar_hash, nar_size, ' +
        'references, compression, file_size; deriver, ca)',
      'bad_batch',
    );
  }
  try {
    // A hash of another algorithm names a key here, then fails the parse below (NarHash: sha256).
    const narHash = Hash.parse(nar_hash);
    const checked = checkCompression(compression);
    const upload: NarUpload = {
      key: narHashKey(slice, narHash.nix32, checked),
      compression: checked,
      // The batch's narinfos are the server's own: like the proxy's, they state no FileHash.
      name: { narHash, hashFile: false },
    };
    const text = serializeNarInfo({
      storePath: store_path,
      url: `nar/${upload.key}`,
      compression: upload.compression,
      narHash,
      narSize: nar_size,
      references,
      deriver,
      ca,
      sigs: [],
      extra: [],
    });
    return { info: parseNarInfo(text, { maxBytes: NARINFO_UPLOAD_LIMIT }), upload, fileSize: file_size };
  } catch (error) {
    if (error instanceof NarInfoError || error instanceof HashError || error instanceof CompressionError)
      throw new HttpError(400, error.message, 'bad_batch');
    throw error;
  }
}

/** The error of the batch's path `index`, its message saying which path it was. */
function ofEntry(error: unknown, index: number, storePath?: string): unknown {
  if (!(error instanceof HttpError)) return error;
  const which = storePath === undefined ? `paths[${index}]` : `paths[${index}] (${storePath})`;
  return new HttpError(error.status, `${which}: ${error.message}`, error.reason, error.headers);
}

export async function postPathBatch(deps: UploadDeps, request: CacheRequest): Promise<void> {
  const { req, res } = request;
  const { cache } = deps;
  // A batch weighs no more than one NAR may: what bounds it is what bounds an upload.
  const writer = await beginWrite(cache, request, cache.maxNarSize, WHAT, false);
  const stored: { info: NarInfo; result: PathBatchResult }[] = [];
  const release = deps.uploadSlots.acquire(requestToken(req) ?? '');
  try {
    acceptBody(req, res);
    const body = new FramedBody(request.body(), cache.maxNarSize, WHAT);
    for (let index = 0; ; index++) {
      let entry: BatchEntry;
      try {
        const line = await body.line(PATH_BATCH_MAX_HEADER_BYTES);
        if (line === null) break;
        if (index === PATH_BATCH_MAX_PATHS)
          throw new HttpError(413, `a ${WHAT} holds at most ${PATH_BATCH_MAX_PATHS} paths`, 'too_large');
        entry = parseEntry(line, writer.slice);
      } catch (error) {
        throw ofEntry(error, index);
      }
      const { info, upload } = entry;
      try {
        await cache.markNarInUse(upload.key);
        const { nar } = await cache.storeNar(writer, upload, body.bytes(entry.fileSize));
        // The NarHash is the name, checked; NarSize is the narinfo's one other fact about the NAR, so
        // with it checked here too, the narinfos below fail only on a race (a collector) or a store failure.
        if (nar.narSize !== info.narSize) throw narSizeMismatch(info.narSize, nar.narSize);
        const url = `nar/${nar.key}`;
        stored.push({
          info: { ...info, url, fileSize: nar.fileSize },
          result: { store_path: info.storePath, outcome: 'created', url, file_size: nar.fileSize },
        });
      } catch (error) {
        throw ofEntry(error, index, info.storePath);
      }
    }
  } finally {
    release();
  }
  if (stored.length === 0) throw new HttpError(400, `the ${WHAT} holds no paths`, 'bad_batch');
  for (const [index, { info, result }] of stored.entries()) {
    try {
      result.outcome = await cache.storeNarInfo(writer, StorePath.parse(info.storePath).hashPart, info);
    } catch (error) {
      throw ofEntry(error, index, info.storePath);
    }
  }
  const answer: PathBatchResponse = { paths: stored.map(({ result }) => result) };
  send(res, 200, { 'content-type': 'application/json' }, JSON.stringify(answer));
}
