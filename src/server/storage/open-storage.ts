/**
 * Opens the stores the config names: files or S3 for NARs, SQLite or PostgreSQL for metadata. A
 * store that cannot be used stops the start with one line naming the config key and the problem.
 */
import { ConfigError, type Config } from '../config/config-schema.js';
import type { S3BlobsConfig } from '../config/storage-config.js';
import type { Logger } from '../server-log.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import type { MetadataStore } from './metadata-store.js';
import type { S3BlobStore } from './s3-blob-store.js';
import { SqliteMetadataStore } from './sqlite-metadata-store.js';
import { describeCause } from './unavailable.js';

export interface Storage {
  blobs: BlobStore;
  meta: MetadataStore;
  /** The bucket, when NARs are in one (for presigned downloads). */
  s3?: { store: S3BlobStore; config: S3BlobsConfig };
  close(): Promise<void>;
}

export async function openStorage(
  config: Config,
  paths: { database: string; nars: string },
  log: Logger,
): Promise<Storage> {
  const meta = await openMetadata(config, paths.database);
  try {
    if (config.blobs.type === 'fs') {
      const blobs = await FsBlobStore.open(paths.nars);
      return { blobs, meta, close: () => meta.close() };
    }
    const s3 = await openBucket(config.blobs, log);
    return {
      blobs: s3,
      meta,
      s3: { store: s3, config: config.blobs },
      close: async () => {
        await meta.close();
        await s3.close();
      },
    };
  } catch (error) {
    await meta.close();
    throw error;
  }
}

async function openMetadata(config: Config, sqlitePath: string): Promise<MetadataStore> {
  if (!config.database) return new SqliteMetadataStore(sqlitePath);
  // Loaded only when configured: the embedded default never pays for the PostgreSQL driver.
  const { PgMetadataStore } = await import('./pg-metadata-store.js');
  try {
    return await PgMetadataStore.open(config.database.url);
  } catch (error) {
    const where = new URL(config.database.url);
    throw new ConfigError(
      `${config.database.source}: cannot use the PostgreSQL database at ${where.hostname}:${where.port || 5432}${where.pathname}: ${describeCause(error)}`,
    );
  }
}

async function openBucket(blobs: S3BlobsConfig, log: Logger): Promise<S3BlobStore> {
  // Loaded only when configured: the embedded default never pays for the AWS SDK.
  const [{ S3BlobStore }, { httpStatusOf }] = await Promise.all([
    import('./s3-blob-store.js'),
    import('./s3-client.js'),
  ]);
  const store = new S3BlobStore(blobs);
  try {
    await store.checkBucket();
  } catch (error) {
    store.client.destroy();
    throw new ConfigError(bucketProblem(blobs, httpStatusOf(error), error));
  }
  // Uploads a killed replica left unfinished: invisible, but their parts take space until aborted.
  const before = new Date(Date.now() - blobs.abortIncompleteAfterSeconds * 1000);
  store.abortIncompleteUploads(before).then(
    (aborted) => {
      if (aborted > 0) log.info({ aborted }, 'aborted multipart uploads left unfinished');
    },
    (error: unknown) =>
      log.warn({ reason: describeCause(error) }, 'could not list unfinished multipart uploads'),
  );
  return store;
}

function bucketProblem(blobs: S3BlobsConfig, status: number | undefined, error: unknown): string {
  const endpoint = blobs.endpoint ?? `AWS S3 (${blobs.region})`;
  if ((error as Error).name === 'CredentialsProviderError')
    return `storage.blobs: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role)`;
  if (status === 404) return `storage.blobs.bucket: bucket '${blobs.bucket}' does not exist at ${endpoint}`;
  if (status === 403)
    return `storage.blobs: access to bucket '${blobs.bucket}' at ${endpoint} denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or role) and the bucket policy`;
  if (status === 301 || status === 400)
    return `storage.blobs.region: bucket '${blobs.bucket}' answered ${status}: is region '${blobs.region}' right?`;
  if (status === undefined)
    return `storage.blobs.endpoint: cannot reach ${endpoint}: ${describeCause(error)}`;
  return `storage.blobs: bucket '${blobs.bucket}' at ${endpoint} answered HTTP ${status}: ${describeCause(error)}`;
}
