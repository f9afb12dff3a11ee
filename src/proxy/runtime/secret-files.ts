/** The per-job secret files (proxy path, control bearer): removed when a daemon stops, whichever kind. */
import { rm } from 'node:fs/promises';

export async function removeSecretFiles(files: string[]): Promise<void> {
  await Promise.all(files.map((file) => rm(file, { force: true }).catch(() => undefined)));
}
