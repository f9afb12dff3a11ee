/**
 * `POST /_api/v1/paths`: many small store paths pushed in one request, each NAR with its narinfo,
 * as server (src/server/http/path-batch-handler.ts) and proxy (src/proxy/push/path-batch.ts) both
 * know it. Two requests per path (NAR, then narinfo) cost the server and the proxy more than the
 * bytes of a small path do, and each is a round trip to a remote server.
 *
 * The body is, for each path in turn, one header line (a JSON `PathBatchEntry`, then `\n`)
 * followed by exactly `file_size` bytes: the compressed NAR. The server verifies and stores every
 * NAR as it streams by, then, once all are in, stores the narinfos in the order given (references
 * first), so a batch never shows a path whose references it lacks.
 */
import { ServerAnswerError } from './server-api.js';

export const PATH_BATCH_PATH = '/_api/v1/paths';
export const PATH_BATCH_CONTENT_TYPE = 'application/x-sluice-path-batch';
/** Paths per request. */
export const PATH_BATCH_MAX_PATHS = 1000;
/** A header line, as a narinfo upload may be. */
export const PATH_BATCH_MAX_HEADER_BYTES = 64 * 1024;

/** One path's header line: its narinfo's fields but those of the file, which the server fills in. */
export interface PathBatchEntry {
  store_path: string;
  /** `sha256:<nix32>`, as the narinfo states it. */
  nar_hash: string;
  nar_size: number;
  /** Base names (`<hash>-<name>`), as the narinfo states them. */
  references: string[];
  deriver?: string;
  ca?: string;
  compression: string;
  /** The bytes of the compressed NAR that follow the line. */
  file_size: number;
}

/** What the server stored for a path of the batch. */
export interface PathBatchResult {
  store_path: string;
  /** `created`, or `exists`: the slice had this narinfo already. */
  outcome: 'created' | 'exists';
  url: string;
  file_size: number;
}

/** The 200 answer: one result per path, in the order sent. */
export interface PathBatchResponse {
  paths: PathBatchResult[];
}

/** The answer to a batch of `storePaths`, checked to be one result for each, in order. */
export function parsePathBatchResponse(text: string, storePaths: readonly string[]): PathBatchResult[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ServerAnswerError('the path batch answered something that is not JSON');
  }
  const paths = (json as Partial<PathBatchResponse> | null)?.paths;
  const fits =
    Array.isArray(paths) &&
    paths.length === storePaths.length &&
    paths.every(
      (result, index) =>
        result?.store_path === storePaths[index] &&
        (result.outcome === 'created' || result.outcome === 'exists') &&
        typeof result.url === 'string' &&
        Number.isSafeInteger(result.file_size),
    );
  if (!fits)
    throw new ServerAnswerError(`the path batch's answer does not fit the paths sent: ${text.slice(0, 300)}`);
  return paths;
}
