/**
 * The audit log of accepted writes: rows are written by the narinfo upload (in the same transaction
 * as the narinfo), read here for `sluice audit`.
 */
import { existsSync } from 'node:fs';
import type { Config } from './config/config-schema.js';
import { parseDuration } from './config/units.js';
import { dataPaths } from './data-dir.js';
import type { AuditEntry, MetadataStore } from './storage/metadata-store.js';
import { SqliteMetadataStore } from './storage/sqlite-metadata-store.js';

export interface AuditQuery {
  slice?: string;
  since?: Date;
  limit?: number;
}

/** `--since`: an ISO date/time, or a duration back from `now` (`24h`, `7d`). */
export function parseSince(text: string, now = new Date()): Date {
  if (/^\d+\s*[smhd]$/.test(text.trim())) return new Date(+now - parseDuration(text) * 1000);
  const date = new Date(text);
  if (Number.isNaN(+date))
    throw new Error(`--since '${text}' is neither a date (2026-01-31T12:00Z) nor a duration (24h, 7d)`);
  return date;
}

/** Reads the audit log from the config's database: PostgreSQL if named, else SQLite in the data dir. */
export async function readAudit(
  config: Pick<Config, 'data' | 'database'>,
  query: AuditQuery,
): Promise<AuditEntry[]> {
  let store: MetadataStore;
  if (config.database) {
    const { PgMetadataStore } = await import('./storage/pg-metadata-store.js');
    store = await PgMetadataStore.open(config.database.url);
  } else {
    const { database } = dataPaths(config.data);
    if (!existsSync(database)) throw new Error(`no Sluice database at ${database} (is --data right?)`);
    store = new SqliteMetadataStore(database);
  }
  try {
    return await store.listAudit(query);
  } finally {
    await store.close();
  }
}

export const AUDIT_COLUMNS = [
  'time',
  'slice',
  'store_path',
  'nar_size',
  'file_size',
  'repository',
  'ref',
  'workflow',
  'run_id',
  'sha',
] as const;

/** One entry as a flat record with the column names above (for tab-separated and JSON output). */
export function auditRecord(
  entry: AuditEntry,
): Record<(typeof AUDIT_COLUMNS)[number], string | number | null> {
  return {
    time: entry.time.toISOString(),
    slice: entry.slice,
    store_path: entry.storePath,
    nar_size: entry.narSize,
    file_size: entry.fileSize,
    repository: entry.repository ?? null,
    ref: entry.ref ?? null,
    workflow: entry.workflow ?? null,
    run_id: entry.runId ?? null,
    sha: entry.sha ?? null,
  };
}
