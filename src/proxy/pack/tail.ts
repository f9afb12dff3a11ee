/**
 * Reads the archive @actions/cache is downloading while it downloads: it writes the archive front
 * to back (one GET streamed to the file, or 128 MiB segments in order from Azure) into a fresh
 * directory under RUNNER_TEMP, here the pack's own. The bytes are read as they land; the end is
 * known once the restore call has returned.
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 20;
const READ_BYTES = 1024 * 1024;
export const ARCHIVE_NAMES = ['cache.tzst', 'cache.tgz'];

/** The archive's path once it appears in a directory below `tempDir`, or undefined if the restore ended first. */
async function findArchive(tempDir: string, finished: () => boolean): Promise<string | undefined> {
  for (;;) {
    const done = finished();
    for (const entry of await readdir(tempDir, { recursive: true }).catch(() => [])) {
      const name = String(entry);
      if (ARCHIVE_NAMES.some((archive) => name.endsWith(archive))) return join(tempDir, name);
    }
    if (done) return undefined;
    await sleep(POLL_MS);
  }
}

export interface TailedArchive {
  path: string;
  chunks: AsyncGenerator<Buffer>;
}

export async function tailArchive(
  tempDir: string,
  finished: () => boolean,
): Promise<TailedArchive | undefined> {
  const path = await findArchive(tempDir, finished);
  if (!path) return undefined;
  // Opened at once: @actions/cache deletes the archive after extracting it; the open file stays readable.
  const file = await open(path, 'r').catch(() => undefined);
  if (!file) return undefined;
  async function* chunks(): AsyncGenerator<Buffer> {
    let position = 0;
    try {
      for (;;) {
        const done = finished();
        // Only what has landed: a buffer of READ_BYTES for each read of a few KiB would allocate
        // several times the archive, each such buffer a call for V8's full GC (external memory).
        const available = (await file!.stat()).size - position;
        if (available > 0) {
          const length = Math.min(available, READ_BYTES);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await file!.read(buffer, 0, length, position);
          if (bytesRead > 0) {
            position += bytesRead;
            yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
            continue;
          }
        }
        if (done) return;
        await sleep(POLL_MS);
      }
    } finally {
      await file!.close();
    }
  }
  return { path, chunks: chunks() };
}
