/**
 * Uploads store paths: a bounded number of NARs compressed and streamed to the server at once, in
 * any order; each narinfo only once the narinfos of its references are up, so the cache never
 * shows a path whose references it lacks. A path whose reference failed is failed too (its NAR may
 * already be up: harmless, nothing points to it).
 *
 * A NAR goes to `PUT /_api/v1/nar/<narhash>.nar<ext>`: named by the NarHash the Nix database holds,
 * so it streams as it is compressed; the server verifies the NAR against the name and answers the
 * file's URL and FileSize, which the narinfo then states (no FileHash: see StoredNar). Small paths
 * whose references are up go many to a request instead (path-batch.ts), NAR and narinfo together.
 */
import { Hash } from '../../nix/hash.js';
import { narFileName, parseNarUrl } from '../../nix/nar-url.js';
import { serializeNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { StorePath } from '../../nix/store-path.js';
import type { PushCompression } from '../../contracts/daemon-config.js';
import {
  NAR_UPLOAD_PREFIX,
  NAR_UPLOAD_WITHOUT_FILE_HASH,
  type NarUploadResponse,
} from '../../contracts/server-api.js';
import type { Logger } from '../report/daemon-log.js';
import { compressedNar } from './nar-file.js';
import { BATCH_MAX_NAR_BYTES, BATCH_MAX_PATHS, batchable, pushBatch } from './path-batch.js';
import type { Stats } from '../report/stats.js';
import type { PathInfo } from './local-store.js';
import { describeNetworkError, type Upstream, UpstreamError } from '../upstream/upstream-client.js';

export interface UploaderOptions {
  concurrency: number;
  compression: PushCompression;
  server: Upstream;
  stats: Stats;
  log: Logger;
  signal: AbortSignal;
  /** A narinfo is now on the server. */
  onPushed?: (hashPart: string) => void;
  /** A path finished (pushed or failed). */
  onSettled: () => void;
}

/** References first: a depth-first post-order over the references within `infos`. */
export function referencesFirst(infos: PathInfo[]): PathInfo[] {
  const byPath = new Map(infos.map((info) => [info.path, info]));
  const ordered: PathInfo[] = [];
  const visited = new Set<string>();
  const visit = (info: PathInfo): void => {
    if (visited.has(info.path)) return;
    visited.add(info.path);
    for (const ref of info.references) {
      const refInfo = byPath.get(ref);
      if (refInfo) visit(refInfo);
    }
    ordered.push(info);
  };
  infos.forEach(visit);
  return ordered;
}

/**
 * What the server stored for a NAR: what the narinfo must say about the file. No FileHash: the
 * upload asks for none (NAR_UPLOAD_WITHOUT_FILE_HASH), which spares the server a SHA-256 pass over
 * every byte; Nix checks the NarHash of what it substitutes, never the FileHash.
 */
export interface StoredNar {
  url: string;
  fileSize: number;
}

/** The server's answer to a NAR upload, checked against the path it was for. */
function parseStoredNar(text: string, info: PathInfo, compression: PushCompression): StoredNar {
  const answer = JSON.parse(text) as Partial<Record<keyof NarUploadResponse, unknown>>;
  const { url, file_size: fileSize, nar_hash: narHash, nar_size: narSize } = answer;
  if (
    typeof url !== 'string' ||
    parseNarUrl(url)?.compression !== compression ||
    typeof fileSize !== 'number' ||
    typeof narHash !== 'string' ||
    narSize !== info.narSize ||
    !Hash.parse(narHash).equals(info.narHash)
  ) {
    throw new UpstreamError(
      `the server's answer to the NAR upload of ${info.path} does not fit it: ${text.slice(0, 300)}`,
    );
  }
  return { url, fileSize };
}

/** Why a path was not pushed once the server's storage is full. */
const STORAGE_FULL = 'the cache server has no room for uploads (HTTP 507)';

export class Uploader {
  private queue: PathInfo[] = [];
  /** Uploads holding one of the `concurrency` slots: a path's NAR, or a batch. */
  private active = 0;
  /** Paths taken from the queue and not settled yet. */
  private readonly inFlight = new Set<string>();
  /** Per path given to this uploader: resolves to whether its narinfo made it to the server. */
  private readonly outcomes = new Map<string, Promise<boolean>>();
  private readonly settle = new Map<string, (ok: boolean) => void>();
  /** Paths given to this uploader that are on the server (pushed, or found there). */
  private readonly up = new Set<string>();
  /** False once the server has no batch route (an older server): every path goes on its own. */
  private batching = true;
  private pumpSoon = false;
  /** Paths of a batch that failed: pushed on their own, so one bad path fails alone. */
  private readonly alone = new Set<string>();
  /**
   * Set once the server said it has no room (507): every later upload would send its bytes only to
   * be refused, so the paths still queued fail at once instead.
   */
  private storageFull = false;

  constructor(private readonly options: UploaderOptions) {}

  get pending(): number {
    return this.queue.length + this.inFlight.size;
  }

  /**
   * Announces paths that may be added soon (still being checked): a referrer added before them
   * then waits for their outcome before its narinfo goes up.
   */
  expect(paths: string[]): void {
    for (const path of paths) {
      if (!this.outcomes.has(path)) {
        this.outcomes.set(path, new Promise((resolve) => this.settle.set(path, resolve)));
      }
    }
  }

  /** An expected path that needs no upload after all (the cache or an upstream cache has it). */
  skip(path: string): void {
    this.finish(path, true);
  }

  private finish(path: string, ok: boolean): void {
    this.inFlight.delete(path);
    if (ok) this.up.add(path);
    this.settle.get(path)?.(ok);
  }

  add(infos: PathInfo[]): void {
    const ordered = referencesFirst(infos);
    this.expect(ordered.map((info) => info.path));
    this.queue.push(...ordered);
    // Paths found missing one by one in the same turn (a planned closure) are taken together, so
    // that batches form from all of them and not from what is left after the first few.
    if (!this.pumpSoon) {
      this.pumpSoon = true;
      setImmediate(() => {
        this.pumpSoon = false;
        this.pump();
      });
    }
  }

  private pump(): void {
    if (this.storageFull) this.failQueued(STORAGE_FULL);
    while (this.active < this.options.concurrency && this.queue.length > 0 && !this.options.signal.aborted) {
      this.active++;
      const batch = this.takeBatch();
      if (batch.length > 1) void this.runBatch(batch);
      else void this.run(batch[0] ?? this.queue.shift()!);
    }
  }

  /** Fails every queued path without trying it. */
  private failQueued(reason: string): void {
    if (this.queue.length === 0) return;
    for (const info of this.queue.splice(0)) {
      this.options.stats.pushFailed(info.path, `not pushed: ${reason}`);
      this.finish(info.path, false);
    }
    this.options.onSettled();
  }

  /** Notes a 507: the first one says once why the rest of the job's paths are not pushed. */
  private noteStorageFull(error: unknown): void {
    if (this.storageFull || !(error instanceof UpstreamError) || error.status !== 507) return;
    this.storageFull = true;
    this.options.log.warn({ err: error.message }, `${STORAGE_FULL}: this job pushes nothing more`);
  }

  /**
   * Small paths from the front of the queue whose references are up or earlier in the batch (the
   * server stores a batch's narinfos in order, once all its NARs are in). A path that does not fit
   * stays in the queue for later (or goes on its own when nothing fits).
   */
  private takeBatch(): PathInfo[] {
    if (!this.batching) return [];
    const batch: PathInfo[] = [];
    const members = new Set<string>();
    let bytes = 0;
    // A bounded look ahead: the queue may hold a whole closure.
    for (const info of referencesFirst(this.queue.slice(0, 4 * BATCH_MAX_PATHS))) {
      if (batch.length === BATCH_MAX_PATHS) break;
      const fits =
        batchable(info, this.options.compression) &&
        !this.alone.has(info.path) &&
        bytes + info.narSize <= BATCH_MAX_NAR_BYTES &&
        info.references.every(
          (ref) => ref === info.path || members.has(ref) || this.up.has(ref) || !this.outcomes.has(ref),
        );
      if (!fits) continue;
      batch.push(info);
      members.add(info.path);
      bytes += info.narSize;
    }
    if (batch.length > 0) this.queue = this.queue.filter((info) => !members.has(info.path));
    return batch;
  }

  private async runBatch(batch: PathInfo[]): Promise<void> {
    const { stats, log, server, signal, compression } = this.options;
    for (const info of batch) this.inFlight.add(info.path);
    stats.pushStarted();
    try {
      const results = await pushBatch(server, batch, compression as 'none' | 'zstd', signal);
      for (const [index, info] of batch.entries()) {
        const { file_size: fileSize, outcome } = results[index]!;
        stats.pushedPaths++;
        stats.pushedBytes += fileSize;
        stats.paths.pushed(info.path, fileSize);
        log.info({ path: info.path, bytes: fileSize, batch: batch.length, stored: outcome }, 'pushed');
        this.options.onPushed?.(StorePath.parse(info.path).hashPart);
        this.finish(info.path, true);
      }
    } catch (e) {
      const status = e instanceof UpstreamError ? e.status : undefined;
      // A server from before the batch route: 404 (no such endpoint) or 405.
      if (status === 404 || status === 405) this.batching = false;
      this.noteStorageFull(e);
      for (const info of batch) this.alone.add(info.path);
      const error = e instanceof UpstreamError ? e.message : describeNetworkError(e);
      if (!this.storageFull)
        log.info({ paths: batch.length, err: error }, 'batch push failed: pushing its paths one by one');
      for (const info of batch) this.inFlight.delete(info.path);
      this.queue.unshift(...batch);
    } finally {
      this.active--;
      stats.pushFinished();
      this.pump();
      this.options.onSettled();
    }
  }

  private async run(info: PathInfo): Promise<void> {
    const { stats, log } = this.options;
    this.inFlight.add(info.path);
    stats.pushStarted();
    let file: StoredNar | undefined;
    let ok = false;
    try {
      try {
        file = await this.uploadNar(info);
      } catch (e) {
        // Before the next upload is taken.
        this.noteStorageFull(e);
        throw e;
      } finally {
        this.active--;
        this.pump();
      }
      const failedRef = await this.failedReference(info);
      if (failedRef) throw new Error(`not pushed: its reference ${failedRef} failed to push`);
      const narinfoBytes = await this.uploadNarInfo(info, file);
      stats.pushedPaths++;
      stats.pushedBytes += file.fileSize + narinfoBytes;
      stats.paths.pushed(info.path, file.fileSize);
      log.info({ path: info.path, bytes: file.fileSize }, 'pushed');
      this.options.onPushed?.(StorePath.parse(info.path).hashPart);
      ok = true;
    } catch (e) {
      const error = e instanceof UpstreamError ? e.message : describeNetworkError(e);
      stats.pushFailed(info.path, error);
      log.warn({ path: info.path, err: error }, 'push failed');
    } finally {
      this.finish(info.path, ok);
      stats.pushFinished();
      this.options.onSettled();
    }
  }

  /** Waits for the references given to this uploader; the first that failed, if any. */
  private async failedReference(info: PathInfo): Promise<string | undefined> {
    for (const ref of info.references) {
      const outcome = ref === info.path ? undefined : this.outcomes.get(ref);
      if (outcome && !(await outcome)) return ref;
    }
    return undefined;
  }

  private async uploadNar(info: PathInfo): Promise<StoredNar> {
    const { compression } = this.options;
    const path = `${NAR_UPLOAD_PREFIX}${narFileName(info.narHash.nix32, compression)}?${NAR_UPLOAD_WITHOUT_FILE_HASH}`;
    // No Content-Length: the compressed size is known only once it is sent (chunked encoding).
    const text = await this.put(path, () => compressedNar(info, compression), {
      'content-type': 'application/x-nix-nar',
    });
    return parseStoredNar(text, info, compression);
  }

  /** PUTs the narinfo (unsigned: the server signs); returns its size. */
  private async uploadNarInfo(info: PathInfo, file: StoredNar): Promise<number> {
    const narinfo: NarInfo = {
      storePath: info.path,
      url: file.url,
      compression: this.options.compression,
      fileSize: file.fileSize,
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references.map((r) => StorePath.parse(r).baseName),
      sigs: [],
      extra: [],
    };
    if (info.deriver) narinfo.deriver = StorePath.parse(info.deriver).baseName;
    if (info.ca) narinfo.ca = info.ca;
    const text = serializeNarInfo(narinfo);
    await this.put(`/${StorePath.parse(info.path).hashPart}.narinfo`, () => text, {
      'content-type': 'text/x-nix-narinfo',
      'content-length': String(Buffer.byteLength(text)),
    });
    return Buffer.byteLength(text);
  }

  private async put(
    path: string,
    body: () => AsyncIterable<Buffer> | string,
    headers: Record<string, string>,
  ): Promise<string> {
    const { statusCode, text } = await this.options.server.requestText({
      method: 'PUT',
      path,
      body,
      headers,
      signal: this.options.signal,
    });
    if (statusCode < 200 || statusCode > 299) {
      throw new UpstreamError(`PUT ${path}: HTTP ${statusCode} ${text.slice(0, 300).trim()}`, statusCode);
    }
    return text;
  }
}
