/**
 * BlobStore on a local directory. A put writes a temp file in the same directory, fsyncs it, then
 * hard-links it to its final name: `link` fails if the name exists, which gives put-if-absent
 * atomically, and readers never see a partial file.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isValidBlobKey, type BlobStore, type ByteRange } from './blob-store.js';

const TEMP_PREFIX = '.upload-';

export class FsBlobStore implements BlobStore {
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

  async put(key: string, body: Readable): Promise<'created' | 'exists'> {
    const finalPath = this.path(key);
    // The body may fail while the temp file is being opened, before anything reads it.
    let failure: Error | undefined;
    body.on('error', (error: Error) => (failure ??= error));
    const tempPath = join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const file = await open(tempPath, 'wx', 0o644);
    try {
      // Writing chunk by chunk keeps backpressure and surfaces an error of `body` (a failed check) here.
      for await (const chunk of body as AsyncIterable<Buffer>) await file.write(chunk);
      if (failure) throw failure;
      await file.sync();
      await file.close();
      try {
        await link(tempPath, finalPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
        throw e;
      }
      await syncDir(this.dir);
      return 'created';
    } finally {
      await file.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    let handle;
    try {
      handle = await open(this.path(key), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
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
