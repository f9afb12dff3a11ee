/** The layout of the data directory (see docs/server.md). */
import { join, resolve } from 'node:path';

export const DATABASE_FILE = 'sluice.db';
export const NAR_DIR = 'nars';

export function dataPaths(dataDir: string): { root: string; database: string; nars: string } {
  const root = resolve(dataDir);
  return { root, database: join(root, DATABASE_FILE), nars: join(root, NAR_DIR) };
}
