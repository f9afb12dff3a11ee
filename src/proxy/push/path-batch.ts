/**
 * Small store paths pushed many to a request (`POST /_api/v1/paths`, src/contracts/path-batch.ts):
 * each path's header line and compressed NAR are made as the body is sent, one path in memory at a
 * time. Two requests per path cost the server and this daemon more than a small path's bytes, and
 * each is a round trip to the server.
 */
import {
  PATH_BATCH_CONTENT_TYPE,
  PATH_BATCH_PATH,
  parsePathBatchResponse,
  type PathBatchEntry,
  type PathBatchResult,
} from '../../contracts/path-batch.js';
import type { PushCompression } from '../../contracts/daemon-config.js';
import { StorePath } from '../../nix/store-path.js';
import type { PathInfo } from './local-store.js';
import { releaseMemory } from '../../nix/buffer-pool.js';
import { SMALL_NAR_BYTES, smallNarFile } from './nar-file.js';
import { type Upstream, UpstreamError } from '../upstream/upstream-client.js';

export const BATCH_MAX_PATHS = 64;
/** NarSize of a batch's paths together: a batch that fails is pushed again path by path. */
export const BATCH_MAX_NAR_BYTES = 8 * 1024 * 1024;

/**
 * Whether a path goes in a batch: small (up to 256 KiB of NAR; larger ones stream on their own),
 * and compressed in-process (xz is a program per NAR).
 */
export function batchable(info: PathInfo, compression: PushCompression): compression is 'none' | 'zstd' {
  return compression !== 'xz' && info.narSize <= SMALL_NAR_BYTES;
}

async function* batchBody(infos: readonly PathInfo[], compression: 'none' | 'zstd'): AsyncGenerator<Buffer> {
  for (const info of infos) {
    const file = await smallNarFile(info, compression);
    const entry: PathBatchEntry = {
      store_path: info.path,
      nar_hash: info.narHash.toString(),
      nar_size: info.narSize,
      references: info.references.map((ref) => StorePath.parse(ref).baseName),
      ...(info.deriver ? { deriver: StorePath.parse(info.deriver).baseName } : {}),
      ...(info.ca ? { ca: info.ca } : {}),
      compression,
      file_size: file.length,
    };
    yield Buffer.from(`${JSON.stringify(entry)}\n`);
    yield file;
    // Sent (the body asks for the next chunk once the socket took this one).
    releaseMemory(file);
  }
}

/** Pushes `infos` (references first) in one request: every path is on the server, or the request failed. */
export async function pushBatch(
  server: Upstream,
  infos: readonly PathInfo[],
  compression: 'none' | 'zstd',
  signal: AbortSignal,
): Promise<PathBatchResult[]> {
  const { statusCode, text } = await server.requestText({
    method: 'POST',
    path: PATH_BATCH_PATH,
    body: () => batchBody(infos, compression),
    headers: { 'content-type': PATH_BATCH_CONTENT_TYPE },
    signal,
  });
  if (statusCode !== 200)
    throw new UpstreamError(
      `POST ${PATH_BATCH_PATH}: HTTP ${statusCode} ${text.slice(0, 300).trim()}`,
      statusCode,
    );
  return parsePathBatchResponse(
    text,
    infos.map((info) => info.path),
  );
}
