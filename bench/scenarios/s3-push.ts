/**
 * Pushing to S3 + PostgreSQL: the same zstd NAR files and narinfos (written once by
 * `nix copy --to file://`) PUT through a Sluice server on a bucket and a database, against
 * PutObject of the same files straight into a bucket with the AWS SDK. And the server's memory
 * while one big NAR streams through it into the bucket.
 */
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { copyToFileCache, makeSigningKey } from '../lib/binary-cache.js';
import {
  putIntoBucket,
  putThroughServer,
  readCacheFiles,
  uploadCache,
  type CacheFiles,
} from '../lib/cache-files.js';
import { buildPaths, deletePaths, type PathGroup } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import type { Row, Side } from '../lib/report.js';
import { dropBucket, objectStoreCpuSeconds, s3ServerYaml, type Backends } from '../lib/services.js';
import { reason } from '../lib/sluice.js';
import { startStack } from '../lib/stack.js';
import { median, MiB, rotate, timed } from '../lib/stats.js';
import { verificationCpuSeconds } from '../lib/verify-floor.js';
import { createS3Client } from '../../src/server/storage/s3-client.js';

/** Store paths in flight on both sides: the Action's proxy uploads 4 at a time. */
export const UPLOAD_CONCURRENCY = 4;

function describe(groups: PathGroup[]): string {
  const parts = groups.map((group) => `${group.count} × ${Math.round((group.bytes / MiB) * 10) / 10} MiB`);
  const total = groups.reduce((sum, group) => sum + group.count * group.bytes, 0);
  return `${Math.round(total / MiB)} MiB (${parts.join(' + ')})`;
}

/** Builds `groups`, writes them as a zstd file:// cache, and deletes the store paths again. */
async function cacheOf(context: Context, groups: PathGroup[], name: string): Promise<CacheFiles> {
  const built = await buildPaths(groups);
  try {
    const dir = context.scratch(name);
    await copyToFileCache(built.paths, dir, await makeSigningKey(context.scratch(`${name}-key`)));
    return readCacheFiles(dir);
  } finally {
    await deletePaths(built);
  }
}

interface UploadRun {
  seconds: number;
  /** CPU seconds of the benchmark's own process (the uploading client) and of the Ceph daemons. */
  clientCpu: number;
  objectStoreCpu: number | undefined;
}

interface ServerRun extends UploadRun {
  serverCpu: number;
  serverRss: number;
}

/** Measures `upload` with the CPU the client and the object store used meanwhile. */
async function measured(upload: () => Promise<void>): Promise<UploadRun> {
  const objectStoreBefore = objectStoreCpuSeconds();
  const clientBefore = process.cpuUsage();
  const { seconds } = await timed(upload);
  const client = process.cpuUsage(clientBefore);
  const objectStoreAfter = objectStoreCpuSeconds();
  return {
    seconds,
    clientCpu: (client.user + client.system) / 1e6,
    objectStoreCpu:
      objectStoreBefore === undefined || objectStoreAfter === undefined
        ? undefined
        : objectStoreAfter - objectStoreBefore,
  };
}

function medianRun<T extends UploadRun>(runs: T[]): T {
  return [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor(runs.length / 2)]!;
}

function cpuText(run: UploadRun): string {
  const store = run.objectStoreCpu === undefined ? '' : `, Ceph ${run.objectStoreCpu.toFixed(1)} s`;
  return `client ${run.clientCpu.toFixed(1)} s${store}`;
}

/** Where the time went in the median runs: tells a server that computes from one that waits. */
function runNote(runs: ServerRun[], sdkRuns: UploadRun[] = []): string {
  const mid = medianRun(runs);
  const sluice = `median run: ${mid.seconds.toFixed(1)} s wall; CPU: server ${mid.serverCpu.toFixed(1)} s, ${cpuText(mid)}; server peak RSS ${median(runs.map((run) => run.serverRss)).toFixed(0)} MB`;
  if (sdkRuns.length === 0) return sluice;
  const sdk = medianRun(sdkRuns);
  return `${sluice}. SDK's median run: ${sdk.seconds.toFixed(1)} s wall; CPU: ${cpuText(sdk)}`;
}

/**
 * The least wall time any verifying server could take on this machine: the Sluice side's client
 * and Ceph, the verification alone, and at least the SDK client's own work to send the bytes on,
 * all spread perfectly over the cores. Receiving the body and everything else is left out.
 */
function floorNote(verifyCpu: number, runs: ServerRun[], sdkRuns: UploadRun[]): string {
  const sluice = medianRun(runs);
  const sdk = medianRun(sdkRuns);
  const verification = `Verification alone (FileHash, zstd, NarHash of the same files, on a verification worker as the server runs it): ${verifyCpu.toFixed(1)} s CPU`;
  if (sluice.objectStoreCpu === undefined) return verification;
  const cores = availableParallelism();
  const seconds = (sluice.clientCpu + sluice.objectStoreCpu + verifyCpu + sdk.clientCpu) / cores;
  return (
    `${verification}; a server doing only that and the SDK client's work could at best take ` +
    `(client + Ceph + verification + SDK client CPU) / ${cores} cores = ${seconds.toFixed(1)} s, ` +
    `${(seconds / median(sdkRuns.map((run) => run.seconds))).toFixed(2)}× the SDK's median`
  );
}

/** A fresh server on a fresh bucket and database receives `files`; the bucket is dropped afterwards. */
async function throughSluice(
  context: Context,
  backends: Backends,
  files: CacheFiles,
  concurrency: number,
  job: number,
): Promise<ServerRun> {
  const bucket = await backends.bucket();
  try {
    const stack = await startStack(context, ['cli'], s3ServerYaml(bucket, await backends.database()));
    try {
      const uploader = putThroughServer(stack.server.url, (await stack.token(job)).token);
      try {
        const serverBefore = stack.server.cpuSeconds();
        const run = await measured(() => uploadCache(files, uploader.put, concurrency));
        return {
          ...run,
          serverCpu: stack.server.cpuSeconds() - serverBefore,
          serverRss: stack.server.peakRssMB(),
        };
      } finally {
        await uploader.close();
      }
    } finally {
      await stack.close();
    }
  } finally {
    await dropBucket(bucket);
  }
}

/** The same files PutObject'ed into a fresh bucket with the SDK (the client the server uses too). */
async function throughSdk(backends: Backends, files: CacheFiles, concurrency: number): Promise<UploadRun> {
  const bucket = await backends.bucket();
  const client = createS3Client(bucket);
  try {
    return await measured(() => uploadCache(files, putIntoBucket(client, bucket.bucket), concurrency));
  } finally {
    client.destroy();
    await dropBucket(bucket);
  }
}

const PUSH_TARGET = '≤ 1.3×';
const MEMORY_TARGET = '≤ 200 MB';

export function s3PushUnavailable(why: string): Row[] {
  const unavailable: Side = { unavailable: why };
  return [
    {
      scenario: 'S3 push: Sluice on S3 + PostgreSQL vs PutObject with the SDK',
      unit: 's',
      sluice: unavailable,
      baseline: unavailable,
      target: PUSH_TARGET,
    },
    {
      scenario: 'memory: S3 server peak RSS while one big NAR streams through',
      unit: 'MB',
      sluice: unavailable,
      target: MEMORY_TARGET,
    },
  ];
}

export async function s3PushScenarios(context: Context, backends: Backends): Promise<Row[]> {
  const { sizes, log } = context;
  const rows: Row[] = [];
  let push: CacheFiles | undefined;
  let big: CacheFiles | undefined;
  try {
    log(`S3 push: building ${describe(sizes.push)} and one NAR of ${sizes.bigNar / MiB} MiB`);
    push = await cacheOf(context, sizes.push, 's3-push-cache');
    big = await cacheOf(context, [{ count: 1, bytes: sizes.bigNar }], 's3-big-nar');

    const verifyCpu = await verificationCpuSeconds(push);
    log(`S3 push: ${push.paths.length} paths, ${sizes.repetitions} repetitions per side`);
    const runs: ServerRun[] = [];
    const viaSluice = async (repetition: number) => {
      const result = await throughSluice(context, backends, push!, UPLOAD_CONCURRENCY, 10 + repetition);
      runs.push(result);
      return result.seconds;
    };
    const sdkRuns: UploadRun[] = [];
    const viaSdk = async () => {
      const result = await throughSdk(backends, push!, UPLOAD_CONCURRENCY);
      sdkRuns.push(result);
      return result.seconds;
    };
    const [sluice, sdk] = await rotate(sizes.repetitions, [viaSluice, viaSdk]);
    rows.push({
      scenario: `S3 push: ${describe(sizes.push)} of zstd NARs + narinfos PUT through Sluice on S3 + PostgreSQL vs PutObject of the same files with the SDK, ${UPLOAD_CONCURRENCY} paths at a time`,
      unit: 's',
      sluice: { samples: sluice! },
      baseline: { samples: sdk! },
      target: PUSH_TARGET,
      met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.3,
      note: `${runNote(runs, sdkRuns)}. ${floorNote(verifyCpu, runs, sdkRuns)}`,
    });

    log(`S3 memory: one ${sizes.bigNar / MiB} MiB NAR through the server, ${sizes.repetitions} repetitions`);
    const bigRuns: ServerRun[] = [];
    for (let repetition = 0; repetition < sizes.repetitions; repetition++)
      bigRuns.push(await throughSluice(context, backends, big, 1, 20 + repetition));
    rows.push({
      scenario: `memory: S3 server peak RSS while one ${sizes.bigNar / MiB} MiB NAR streams through it into the bucket`,
      unit: 'MB',
      sluice: { samples: bigRuns.map((run) => run.serverRss) },
      target: MEMORY_TARGET,
      met: (megabytes) => megabytes <= 200,
      note: `${runNote(bigRuns)} (${(big.bytes / MiB).toFixed(0)} MiB of files)`,
    });
    return rows;
  } catch (error) {
    return [...rows, ...s3PushUnavailable(reason(error)).slice(rows.length)];
  } finally {
    for (const files of [push, big]) if (files) rmSync(files.dir, { recursive: true, force: true });
  }
}
