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
        const buffer = Buffer.allocUnsafe(READ_BYTES);
        const { bytesRead } = await file!.read(buffer, 0, READ_BYTES, position);
        if (bytesRead > 0) {
          position += bytesRead;
          yield buffer.subarray(0, bytesRead);
        } else if (done) {
          return;
        } else {
          await sleep(POLL_MS);
        }
      }
    } finally {
      await file!.close();
    }
  }
  return { path, chunks: chunks() };
}
