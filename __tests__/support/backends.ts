/**
 * The real PostgreSQL and Ceph RGW the tests use, as jest's global setup started them (or as the
 * environment named them): a fresh database or bucket per test, so tests never see each other's
 * data. Missing services fail the test with the reason; they are never skipped.
 */
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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
import { freePort } from './ports.js';

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
export async function freshDatabase(baseUrl = testDatabaseUrl()): Promise<string> {
  const url = new URL(baseUrl);
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
export async function freshBucket(prefix = '', endpoint = testS3Endpoint()): Promise<TestBucket> {
  const location = {
    bucket: `sluice-t-${randomBytes(6).toString('hex')}`,
    endpoint,
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
  /** Leaves an upload of `key` unfinished, as a process killed mid-upload does. */
  abandonUpload(key: string): Promise<void>;
  close(): Promise<void>;
}

export const blobBackends: [string, () => Promise<BlobBackend>][] = [
  [
    'files',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-blobs-'));
      const store = await FsBlobStore.open(dir);
      return {
        store,
        leftovers: async () => readdirSync(dir),
        abandonUpload: async (key) => writeFileSync(join(dir, `.upload-${key}`), 'partial'),
        close: async () => undefined,
      };
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
        abandonUpload: async (key) => {
          const command = new CreateMultipartUploadCommand({
            Bucket: location.bucket,
            Key: store.objectKey(key),
          });
          await store.client.send(command);
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

/** `KEY=value` lines of a service script's output. */
function parseOutput(stdout: string): Record<string, string> {
  return Object.fromEntries(
    [...stdout.matchAll(/^([A-Z0-9_]+)=(.*)$/gm)].map((match) => [match[1] as string, match[2] as string]),
  );
}

/**
 * A PostgreSQL and a Ceph RGW of one test file's own, for tests that restart or stop them (the
 * shared ones serve other test files at the same time). Ports from SLUICE_TEST_OUTAGE_PG_PORT,
 * SLUICE_TEST_OUTAGE_RGW_PORT, SLUICE_TEST_OUTAGE_MON_PORT, else free ones.
 */
export interface PrivateServices {
  databaseUrl: string;
  s3Endpoint: string;
  /** `restart`, or `down` then `up` (the data stays). */
  postgres(command: 'restart' | 'down' | 'up'): Promise<void>;
  /** The S3 gateway only: the objects stay. */
  objectStore(command: 'stop-rgw' | 'start-rgw'): Promise<void>;
  stop(): Promise<void>;
}

/** The last lines of every log under `dir`, for an error that must say why a service did not start. */
function logTails(dir: string, lines = 5): string {
  const tails: string[] = [];
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const file = join(path, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (/\.(log|stderr)$/.test(entry.name)) {
        let tail = '';
        try {
          tail = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
        } catch {
          // A log of another user's (PostgreSQL's) may be unreadable: the others still tell.
        }
        if (tail) tails.push(`${file}:\n${tail}`);
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return tails.join('\n');
}

export async function startPrivateServices(attempt = 1): Promise<PrivateServices> {
  const dir = mkdtempSync(join(process.env.SLUICE_TEST_SERVICES_TMPDIR || '/tmp', 'sluice-outage-'));
  chmodSync(dir, 0o755);
  const pgEnv = {
    ...process.env,
    PG_DIR: join(dir, 'pg'),
    PG_PORT: process.env.SLUICE_TEST_OUTAGE_PG_PORT || String(await freePort()),
  };
  const cephEnv = {
    ...process.env,
    CEPH_DIR: join(dir, 'ceph'),
    RGW_PORT: process.env.SLUICE_TEST_OUTAGE_RGW_PORT || String(await freePort()),
    MON_PORT: process.env.SLUICE_TEST_OUTAGE_MON_PORT || String(await freePort()),
  };
  const postgres = (args: string[]) => run(join(SERVICES, 'postgres.sh'), args, { env: pgEnv });
  const ceph = (args: string[]) => run(join(SERVICES, 'ceph-rgw.sh'), args, { env: cephEnv });
  const stop = async () => {
    await Promise.all([postgres(['stop']).catch(() => undefined), ceph(['stop']).catch(() => undefined)]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [pgOut, cephOut] = await Promise.all([postgres(['start']), ceph(['start'])]);
    return {
      databaseUrl: parseOutput(pgOut.stdout).DATABASE_URL!,
      s3Endpoint: parseOutput(cephOut.stdout).S3_ENDPOINT!,
      postgres: async (command) => void (await postgres([command])),
      objectStore: async (command) => void (await ceph([command])),
      stop,
    };
  } catch (error) {
    const logs = logTails(dir);
    await stop();
    // Now and then Ceph fails a step of its start on a loaded 2-core machine: once more, on fresh
    // ports, before the outage tests fail for it.
    const fixedPorts = process.env.SLUICE_TEST_OUTAGE_RGW_PORT || process.env.SLUICE_TEST_OUTAGE_PG_PORT;
    if (attempt === 1 && !fixedPorts) return startPrivateServices(2);
    throw new Error(
      `cannot start the outage tests' own PostgreSQL and Ceph RGW: ${(error as { stderr?: string }).stderr ?? error}\n${logs}`,
    );
  }
}

/** The config two or more replicas share: one bucket, one database, key files; and those parts. */
export interface SharedBackends {
  bucket: TestBucket;
  databaseUrl: string;
  keysDir: string;
  yaml: string;
}

export async function sharedBackends(
  options: { presigned?: boolean; services?: PrivateServices } = {},
): Promise<SharedBackends> {
  const [bucket, databaseUrl] = await Promise.all([
    freshBucket('cache/', options.services?.s3Endpoint),
    freshDatabase(options.services?.databaseUrl),
  ]);
  const keysDir = join(mkdtempSync(join(tmpdir(), 'sluice-keys-')), 'keys');
  await generateKeyFiles(keysDir, 'replicas-test-1');
  // Presigned URLs go to the bucket under another host name than the cache's 127.0.0.1: curl sends
  // netrc credentials to any URL of the netrc's host, and S3 refuses a request with two signatures.
  const endpoint = options.presigned
    ? bucket.endpoint.replace('//127.0.0.1:', '//localhost:')
    : bucket.endpoint;
  const yaml = [
    'storage:',
    `  blobs: { type: s3, bucket: ${bucket.bucket}, endpoint: '${endpoint}', region: ${bucket.region},`,
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
