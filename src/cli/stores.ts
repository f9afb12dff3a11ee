/** The CLI's access to a data directory's stores (the commands that work offline from the server). */
import { existsSync } from 'node:fs';
import { applyCliOverrides, loadConfig, type Config } from '../server/config.js';
import { dataPaths } from '../server/data-dir.js';
import { FsBlobStore } from '../server/storage/fs-blob-store.js';
import { SqliteMetadataStore } from '../server/storage/sqlite-metadata-store.js';

export interface CliStores {
  config: Config;
  blobs: FsBlobStore;
  meta: SqliteMetadataStore;
}

/** Runs `body` with the stores of the configured data dir, closing them after. */
export async function withStores<T>(
  flags: { config?: string; data?: string },
  body: (stores: CliStores) => Promise<T>,
): Promise<T> {
  const config = applyCliOverrides(await loadConfig(flags.config), { data: flags.data });
  const paths = dataPaths(config.data);
  if (!existsSync(paths.database))
    throw new Error(`no Sluice database at ${paths.database} (is --data right?)`);
  const meta = new SqliteMetadataStore(paths.database);
  try {
    return await body({ config, blobs: await FsBlobStore.open(paths.nars), meta });
  } finally {
    await meta.close();
  }
}
