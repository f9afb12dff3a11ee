/** The CLI's access to the configured stores (the commands that work beside the server: gc, pin, slices). */
import { existsSync } from 'node:fs';
import type { Config } from '../server/config/config-schema.js';
import { applyCliOverrides, applyEnvironment, loadConfig } from '../server/config/server-config.js';
import { dataPaths } from '../server/data-dir.js';
import { createLogger } from '../server/server-log.js';
import type { BlobStore } from '../server/storage/blob-store.js';
import type { MetadataStore } from '../server/storage/metadata-store.js';
import { openStorage } from '../server/storage/open-storage.js';

export interface CliStores {
  config: Config;
  blobs: BlobStore;
  meta: MetadataStore;
}

/** Runs `body` with the stores the config names (the data dir's, or PostgreSQL and a bucket), closing them after. */
export async function withStores<T>(
  flags: { config?: string | undefined; data?: string | undefined },
  body: (stores: CliStores) => Promise<T>,
): Promise<T> {
  const config = applyEnvironment(applyCliOverrides(await loadConfig(flags.config), { data: flags.data }));
  const paths = dataPaths(config.data);
  if (!config.database && !existsSync(paths.database))
    throw new Error(`no Sluice database at ${paths.database} (is --data right?)`);
  // Logs (the bucket's start-up sweep) go to stderr: stdout is the command's answer.
  const storage = await openStorage(config, paths, createLogger(process.stderr, 'warn'));
  try {
    return await body({ config, blobs: storage.blobs, meta: storage.meta });
  } finally {
    await storage.close();
  }
}
