/**
 * The real PostgreSQL and Ceph RGW the tests use, as jest's global setup started them (or as the
 * environment named them): a fresh database or bucket per test, so tests never see each other's
 * data. Missing services fail the test with the reason; they are never skipped.
 */
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { BlobStore } from '../../src/server/storage/blob-store.js';
import { generateKeyFiles } from '../../src/server/keys.js';
import { FsBlobStore } from '../../src/server/storage/fs-blob-store.js';
import type { MetadataStore } from '../../src/server/storage/metadata-store.js';
import { PgMetadataStore } from '../../src/server/storage/pg-metadata-store.js';
import { createS3Client } from '../../src/server/storage/s3-client.js';
import { MIN_PART_SIZE, S3BlobStore } from '../../src/server/storage/s3-blob-store.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';

const run = promisify(execFile);
const SERVICES = fileURLToPath(new URL('../../scripts/services/', import.meta.url));

function required(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run the tests through jest, whose global setup starts the services`);
  return value;
}

export function testDatabaseUrl(): string {
  return required('SLUICE_TEST_DATABASE_URL');
}

/** A new, empty database on the test PostgreSQL; returns its URL. */
export async function freshDatabase(): Promise<string> {
  const url = new URL(testDatabaseUrl());
  const name = `sluice_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  url.pathname = `/${name}`;
  return url.toString();
}

export function testS3Endpoint(): string {
  return required('SLUICE_TEST_S3_ENDPOINT');
}

/** Where a fresh bucket lives, as the server's config would name it. */
export interface TestBucket {
  bucket: string;
  endpoint: string;
  region: string;
  prefix: string;
  forcePathStyle: boolean;
}

/** A new, empty bucket on the test S3 server. */
export async function freshBucket(prefix = ''): Promise<TestBucket> {
  const location = {
    bucket: `sluice-t-${randomBytes(6).toString('hex')}`,
    endpoint: testS3Endpoint(),
    region: 'us-east-1',
    prefix,
    forcePathStyle: true,
  };
  const client = createS3Client(location);
  try {
    await client.send(new CreateBucketCommand({ Bucket: location.bucket }));
  } finally {
    client.destroy();
  }
  return location;
}

/** Every object key and every unfinished multipart upload in the bucket. */
export async function bucketContents(
  location: TestBucket,
): Promise<{ objects: string[]; uploads: string[] }> {
  const client = createS3Client(location);
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: location.bucket }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: location.bucket }));
    return {
      objects: (objects.Contents ?? []).map((object) => object.Key ?? ''),
      uploads: (uploads.Uploads ?? []).map((upload) => upload.Key ?? ''),
    };
  } finally {
    client.destroy();
  }
}

export interface BlobBackend {
  store: BlobStore;
  /** What the backend holds, visible or not: files (temp files too), or objects and uploads. */
  leftovers(): Promise<string[]>;
  close(): Promise<void>;
}

export const blobBackends: [string, () => Promise<BlobBackend>][] = [
  [
    'files',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-blobs-'));
      const store = await FsBlobStore.open(dir);
      return { store, leftovers: async () => readdirSync(dir), close: async () => undefined };
    },
  ],
  [
    'S3',
    async () => {
      const location = await freshBucket('nars/');
      // The smallest part S3 allows, so the tests' bodies of a few MiB go multipart.
      const store = new S3BlobStore({ ...location, partSize: MIN_PART_SIZE });
      return {
        store,
        leftovers: async () => {
          const { objects, uploads } = await bucketContents(location);
          return [...objects, ...uploads.map((key) => `multipart upload of ${key}`)];
        },
        close: () => store.close(),
      };
    },
  ],
];

export const metadataBackends: [string, () => Promise<MetadataStore>][] = [
  [
    'SQLite',
    async () => new SqliteMetadataStore(join(mkdtempSync(join(tmpdir(), 'sluice-meta-')), 'sluice.db')),
  ],
  ['PostgreSQL', async () => PgMetadataStore.open(await freshDatabase())],
];

/** Restarts the test PostgreSQL (only one the global setup started: it knows its directory). */
export async function restartPostgres(): Promise<void> {
  const env = {
    ...process.env,
    PG_DIR: required('SLUICE_TEST_PG_DIR'),
    PG_PORT: required('SLUICE_TEST_PG_PORT'),
  };
  await run(join(SERVICES, 'postgres.sh'), ['restart'], { env });
}

function cephEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CEPH_DIR: required('SLUICE_TEST_CEPH_DIR'),
    RGW_PORT: required('SLUICE_TEST_RGW_PORT'),
    MON_PORT: required('SLUICE_TEST_CEPH_MON_PORT'),
  };
}

/** Stops the S3 gateway (the objects stay); `startObjectStore` brings it back. */
export async function stopObjectStore(): Promise<void> {
  await run(join(SERVICES, 'ceph-rgw.sh'), ['stop-rgw'], { env: cephEnv() });
}

export async function startObjectStore(): Promise<void> {
  await run(join(SERVICES, 'ceph-rgw.sh'), ['start-rgw'], { env: cephEnv() });
}

/** The config two or more replicas share: one bucket, one database, key files; and those parts. */
export interface SharedBackends {
  bucket: TestBucket;
  databaseUrl: string;
  keysDir: string;
  yaml: string;
}

export async function sharedBackends(options: { presigned?: boolean } = {}): Promise<SharedBackends> {
  const [bucket, databaseUrl] = await Promise.all([freshBucket('cache/'), freshDatabase()]);
  const keysDir = join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'keys');
  await generateKeyFiles(keysDir, 'replicas-test-1');
  const yaml = [
    'storage:',
    `  blobs: { type: s3, bucket: ${bucket.bucket}, endpoint: '${bucket.endpoint}', region: ${bucket.region},`,
    `           prefix: '${bucket.prefix}', force_path_style: true, part_size: 5MiB,`,
    `           presigned_downloads: ${options.presigned === true} }`,
    `database: '${databaseUrl}'`,
    `keys: { signing_key_file: ${keysDir}/signing-key.sec, token_key_file: ${keysDir}/token-key.pem }`,
    '',
  ].join('\n');
  return { bucket, databaseUrl, keysDir, yaml };
}

/** Runs one query on a database and returns its rows. */
export async function queryDatabase<T extends Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}
