/**
 * BlobStore on a local directory. A put writes a temp file in the same directory, fsyncs it, then
 * hard-links it to its final name: `link` fails if the name exists, which gives put-if-absent
 * atomically, and readers never see a partial file.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { BufferPool, sendFileRange } from '../../nix/buffer-pool.js';
import { isStorageFull, StorageFullError } from './unavailable.js';
import {
  isNarBlobKey,
  isValidBlobKey,
  type BlobInfo,
  type BlobReader,
  type BlobStore,
  type ByteRange,
} from './blob-store.js';

const TEMP_PREFIX = '.upload-';
/** Files looked up at once by list(). */
const STAT_CHUNK = 64;
/** Reads go into 256 KiB buffers, two per download (one read into while the other is sent). */
// A NAR of up to 1 MiB (most of them) goes in one read and one write: each read is a trip to
// libuv's thread pool, and fewer of them took ~0.4 ms off each such download (docs/benchmarks.md).
const readBuffers = new BufferPool(1024 * 1024, 8);

export class FsBlobStore implements BlobStore {
  /** Temp files of this process's uploads in progress: never taken for abandoned ones. */
  private readonly writing = new Set<string>();

  private constructor(private readonly dir: string) {}

  /** Opens (creating) the directory and removes temp files a crash may have left. */
  static async open(dir: string): Promise<FsBlobStore> {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.startsWith(TEMP_PREFIX)) await unlink(join(dir, name)).catch(() => undefined);
    }
    return new FsBlobStore(dir);
  }

  private path(key: string): string {
    if (!isValidBlobKey(key)) throw new Error(`invalid blob key '${key}'`);
    return join(this.dir, key);
  }

  async put(key: string, body: AsyncIterable<Buffer>): Promise<'created' | 'exists'> {
    const finalPath = this.path(key);
    // Asking for the first chunk now reads the body while the temp file is being opened, and
    // catches a failure of the body meanwhile; it is taken up by the loop below.
    const chunks = body[Symbol.asyncIterator]();
    const first = chunks.next();
    first.catch(() => undefined);
    const tempPath = join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let file: FileHandle;
    this.writing.add(tempPath);
    try {
      file = await open(tempPath, 'wx', 0o644);
    } catch (error) {
      // Told to stop once it next yields; not awaited, as that waits for the client's bytes.
      void chunks.return?.().catch(() => undefined);
      this.writing.delete(tempPath);
      throw fullOr(error);
    }
    try {
      // A chunk at a time: the body's next chunk is asked for once this one is written, and a
      // failed check of the body surfaces here.
      try {
        for (let next = await first; !next.done; next = await chunks.next()) await file.write(next.value);
      } catch (error) {
        // A failed write leaves the body unfinished: it is told to stop.
        await chunks.return?.();
        throw fullOr(error);
      }
      await file.sync().catch((error: unknown) => Promise.reject(fullOr(error)));
      await file.close();
      let outcome: 'created' | 'exists' = 'created';
      try {
        await link(tempPath, finalPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        outcome = 'exists';
      }
      // Synced either way: the time an upload takes must not tell whether the file was there.
      await syncDir(this.dir);
      return outcome;
    } finally {
      await file.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
      this.writing.delete(tempPath);
    }
  }

  async open(key: string, range?: ByteRange): Promise<BlobReader | null> {
    let file: FileHandle;
    try {
      file = await open(this.path(key), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    if (range) return new FileReader(file, range.start, range.end + 1);
    try {
      return new FileReader(file, 0, (await file.stat()).size);
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const info = await stat(this.path(key));
      return { size: info.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await unlink(this.path(key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async abortIncompleteUploads(before: Date): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      if (!name.startsWith(TEMP_PREFIX) || this.writing.has(join(this.dir, name))) continue;
      // Another process's upload in progress writes its file continuously: its mtime is recent.
      const info = await stat(join(this.dir, name)).catch(() => null);
      if (!info || info.mtime >= before) continue;
      await unlink(join(this.dir, name)).then(
        () => removed++,
        () => undefined,
      );
    }
    return removed;
  }

  async *list(skip: (key: string) => boolean = () => false): AsyncIterable<BlobInfo> {
    // One readdir (a single I/O wait however many files), then the candidates looked up 64 at a time.
    const names = (await readdir(this.dir)).filter((name) => isNarBlobKey(name) && !skip(name));
    for (let i = 0; i < names.length; i += STAT_CHUNK) {
      const chunk = names.slice(i, i + STAT_CHUNK);
      // A file deleted since the listing is simply not there any more.
      const infos = await Promise.all(chunk.map((name) => stat(join(this.dir, name)).catch(() => null)));
      for (const [index, info] of infos.entries())
        if (info?.isFile()) yield { key: chunk[index]!, size: info.size, modifiedAt: info.mtime };
    }
  }
}

/** A write that found the disk full as a StorageFullError (507); any other error as it is. */
function fullOr(error: unknown): unknown {
  return isStorageFull(error) ? new StorageFullError('the NAR store', error) : error;
}

/** Sends a file from two reused buffers (sendFileRange). */
class FileReader implements BlobReader {
  readonly length: number;

  constructor(
    private readonly file: FileHandle,
    private readonly start: number,
    /** Exclusive. */
    private readonly end: number,
  ) {
    this.length = end - start;
  }

  async writeTo(sink: Writable, sent?: (bytes: number) => void): Promise<void> {
    try {
      await sendFileRange(this.file, this.start, this.end, sink, readBuffers, sent);
    } finally {
      // Not awaited: the answer need not wait for another trip to the thread pool, and closing a
      // file only read from loses nothing if it fails.
      this.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Makes the new directory entry durable too, not only the file's bytes. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
