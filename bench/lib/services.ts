/**
 * The scale-out backends for the storage scenarios: a throw-away PostgreSQL and Ceph RGW started by
 * scripts/services (as jest's global setup does; ports and directories from the same
 * SLUICE_TEST_* variables, or those of running ones), a fresh database or bucket per server, and
 * buckets emptied again afterwards (the test Ceph keeps objects in memory).
 */
import { DeleteObjectsCommand, ListObjectsV2Command, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freshBucket, freshDatabase, type TestBucket } from '../../__tests__/support/backends.js';
import { createS3Client } from '../../src/server/storage/s3-client.js';
import { cpuSeconds } from './processes.js';
// @ts-expect-error: a JavaScript module without types (shared with jest's global setup).
import { startTestServices, stopTestServices } from '../../scripts/services/test-services.js';

const run = promisify(execFile);
/** Deleting a 1 GiB bucket takes the test Ceph a few seconds. */
const DROP_TIMEOUT_MS = 120_000;

export interface Backends {
  /** A new, empty database on the PostgreSQL; its URL. */
  database(): Promise<string>;
  /** A new, empty bucket on the S3 server. */
  bucket(): Promise<TestBucket>;
  close(): Promise<void>;
}

/**
 * Starts PostgreSQL and Ceph RGW (or uses the ones SLUICE_TEST_DATABASE_URL / SLUICE_TEST_S3_ENDPOINT
 * name). Throws one message saying what is missing, e.g. "postgresql-15 is not installed (apt-get …)".
 */
export async function startBackends(): Promise<Backends> {
  const start = startTestServices as (env: NodeJS.ProcessEnv) => Promise<void>;
  // In process.env: the servers the benchmark starts take the S3 credentials from there.
  try {
    await start(process.env);
  } catch (error) {
    // A loaded machine sometimes fails Ceph's start (the monitor answering EPERM while it settles):
    // once more, then give up with the reason (a missing package says so, both times).
    if (/not installed/.test(String(error))) throw error;
    await start(process.env);
  }
  return {
    database: () => freshDatabase(),
    bucket: () => freshBucket(),
    close: () => (stopTestServices as (env: NodeJS.ProcessEnv) => Promise<void>)(process.env),
  };
}

/**
 * CPU seconds the Ceph daemons (gateway, OSD, monitor) have used so far, when the services started
 * them (their pid files are in SLUICE_TEST_CEPH_DIR/run); undefined for an S3 server of elsewhere.
 */
export function objectStoreCpuSeconds(): number | undefined {
  const runDir = join(process.env.SLUICE_TEST_CEPH_DIR ?? '', 'run');
  if (!process.env.SLUICE_TEST_CEPH_DIR || !existsSync(runDir)) return undefined;
  let seconds = 0;
  for (const file of readdirSync(runDir).filter((name) => name.endsWith('.pid'))) {
    try {
      seconds += cpuSeconds(Number(readFileSync(join(runDir, file), 'utf8')));
    } catch {
      // A daemon that is gone has no CPU to count.
    }
  }
  return seconds;
}

/** Lets anyone GET the bucket's objects: the bucket read as a public binary cache by plain Nix. */
export async function makePublic(bucket: TestBucket): Promise<void> {
  const client = createS3Client(bucket);
  try {
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: '*',
          Action: ['s3:GetObject'],
          Resource: [`arn:aws:s3:::${bucket.bucket}/*`],
        },
      ],
    };
    await client.send(new PutBucketPolicyCommand({ Bucket: bucket.bucket, Policy: JSON.stringify(policy) }));
  } finally {
    client.destroy();
  }
}

/**
 * Deletes the bucket and everything in it. The test Ceph keeps objects in a 2 GiB memory store and
 * runs no garbage collector, so deleted objects' data would stay: on the Ceph the services started,
 * (SLUICE_TEST_CEPH_DIR) radosgw-admin removes them at once, bypassing the collector; on any
 * other S3 server the objects are deleted.
 */
export async function dropBucket(bucket: TestBucket): Promise<void> {
  const cephDir = process.env.SLUICE_TEST_CEPH_DIR;
  if (cephDir && existsSync(join(cephDir, 'ceph.conf'))) {
    const config = join(cephDir, 'ceph.conf');
    try {
      await run(
        'radosgw-admin',
        ['-c', config, 'bucket', 'rm', `--bucket=${bucket.bucket}`, '--purge-objects', '--bypass-gc'],
        {
          timeout: DROP_TIMEOUT_MS,
          killSignal: 'SIGKILL',
        },
      );
    } catch (error) {
      // A full OSD blocks deletes (and writes) for good: say so rather than wait for ever.
      const problem =
        (error as { killed?: boolean }).killed === true
          ? `did not delete bucket ${bucket.bucket} within ${DROP_TIMEOUT_MS / 1000} s (a full OSD blocks deletes)`
          : `could not delete bucket ${bucket.bucket}: ${(error as Error).message.split('\n')[0]}`;
      throw new Error(`the test Ceph ${problem}; \`ceph -c ${config} -s\` shows its health`);
    }
    return;
  }
  const client = createS3Client(bucket);
  try {
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket.bucket }));
      const keys = (page.Contents ?? []).map((object) => ({ Key: object.Key! }));
      if (keys.length === 0) return;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket.bucket, Delete: { Objects: keys } }));
    }
  } finally {
    client.destroy();
  }
}

/** The `storage:` and `database:` config of a server on `bucket` and `database`. */
export function s3ServerYaml(
  bucket: TestBucket,
  database: string,
  options: { endpoint?: string; presigned?: boolean; partSize?: string } = {},
): string {
  return [
    'storage:',
    `  blobs: { type: s3, bucket: ${bucket.bucket}, endpoint: '${options.endpoint ?? bucket.endpoint}',`,
    `           region: ${bucket.region}, prefix: 'nar/', force_path_style: true,`,
    `           presigned_downloads: ${options.presigned === true}${options.partSize ? `, part_size: ${options.partSize}` : ''} }`,
    `database: '${database}'`,
    '',
  ].join('\n');
}
