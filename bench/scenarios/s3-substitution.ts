/**
 * Substituting from S3: Nix (`nix-store --realise` into a fresh store) fetches a closure from a
 * Sluice server on S3 + PostgreSQL with presigned downloads, two ways: straight from the server
 * (narinfos from it, each NAR GET answered 302 to the bucket) and through the Action's proxy
 * (narinfos through it; NAR GETs answered 302 from the proxy's memory, with the presigned URLs the
 * server gave it in one NAR links answer). Both against Nix reading the same bucket as a public
 * HTTP binary cache: the same NAR objects, and the narinfos the server serves copied next to them.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { substituteIntoFreshStore, type Substituter } from '../lib/binary-cache.js';
import { buildFan, deletePaths, type Closure } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import { hashPart } from '../lib/hashes.js';
import type { Row, Side } from '../lib/report.js';
import { dropBucket, makePublic, s3ServerYaml, type Backends } from '../lib/services.js';
import { reason, writeNetrc } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { MiB, rotate, timed } from '../lib/stats.js';
import { substitutionRepetitions } from './substitution.js';
import type { TestBucket } from '../../__tests__/support/backends.js';
import { createS3Client } from '../../src/server/storage/s3-client.js';

const TARGET = '≤ 1.15×';

export function s3SubstitutionUnavailable(why: string): Row[] {
  const unavailable: Side = { unavailable: why };
  return [
    {
      scenario: 'S3 substitution: Nix through presigned redirects vs the bucket as a public HTTP cache',
      unit: 's',
      sluice: unavailable,
      baseline: unavailable,
      target: TARGET,
    },
    {
      scenario:
        'S3 substitution through the proxy: NAR links to the bucket vs the bucket as a public HTTP cache',
      unit: 's',
      sluice: unavailable,
      baseline: unavailable,
      target: TARGET,
    },
  ];
}

/**
 * The bucket as a plain binary cache: `nix-cache-info` and every narinfo as the server serves it
 * (signed by its key, `URL: nar/<FileHash>.nar.zst`, which is where the server put the NAR).
 */
async function publishNarInfos(stack: Stack, bucket: TestBucket, closure: Closure): Promise<void> {
  const reader = (await stack.token(2)).token;
  const client = createS3Client(bucket);
  try {
    const put = (key: string, body: string) =>
      client.send(new PutObjectCommand({ Bucket: bucket.bucket, Key: key, Body: body }));
    await put('nix-cache-info', 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n');
    for (const path of closure.paths) {
      const response = await fetch(`${stack.server.url}/${hashPart(path)}.narinfo`, {
        headers: { authorization: `Bearer ${reader}` },
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`narinfo of ${path} answered ${response.status}: ${text}`);
      await put(`${hashPart(path)}.narinfo`, text);
    }
    await makePublic(bucket);
  } finally {
    client.destroy();
  }
}

/** Checks that the server answers NAR GETs with a redirect to the bucket, not with the bytes. */
async function expectRedirect(
  stack: Stack,
  closure: Closure,
  bucketUrl: string,
  token: string,
): Promise<void> {
  const headers = { authorization: `Bearer ${token}` };
  const narinfo = await (
    await fetch(`${stack.server.url}/${hashPart(closure.root!)}.narinfo`, { headers })
  ).text();
  const url = /^URL: (\S+)$/m.exec(narinfo)?.[1];
  const response = await fetch(`${stack.server.url}/${url}`, { headers, redirect: 'manual' });
  const location = response.headers.get('location') ?? '';
  if (response.status !== 302 || !location.startsWith(`${bucketUrl}/${url}?`))
    throw new Error(`NAR GET answered ${response.status} to '${location}', not a redirect into ${bucketUrl}`);
}

export async function s3SubstitutionScenarios(context: Context, backends: Backends): Promise<Row[]> {
  const { sizes, log } = context;
  let closure: Closure | undefined;
  let bucket: TestBucket | undefined;
  let stack: Stack | undefined;
  try {
    closure = await buildFan(sizes.substitution);
    const description = `${closure.paths.length}-path, ${Math.round(closure.bytes / MiB)} MiB closure`;
    bucket = await backends.bucket();
    // Presigned URLs name the bucket under another host than the server's 127.0.0.1: Nix's curl
    // sends netrc credentials to every URL of that host, and S3 refuses a request signed twice.
    const endpoint = bucket.endpoint.replace('//127.0.0.1:', '//localhost:');
    const yaml = s3ServerYaml(bucket, await backends.database(), { endpoint, presigned: true });
    stack = await startStack(context, ['cli', 'proxy'], yaml);
    log(`S3 substitution: pushing a ${description}`);
    const pusher = await stack.startJob();
    try {
      await pusher.drain([closure.root!]);
    } finally {
      await pusher.close();
    }
    await publishNarInfos(stack, bucket, closure);
    const reader = (await stack.token(3)).token;
    const bucketUrl = `${endpoint}/${bucket.bucket}`;
    await expectRedirect(stack, closure, bucketUrl, reader);

    const viaSluice: Substituter = {
      url: stack.server.url,
      publicKey: stack.server.publicKey,
      netrcFile: writeNetrc(context.scratch('s3-netrc'), reader),
    };
    const fromBucket: Substituter = { url: bucketUrl, publicKey: stack.server.publicKey };
    const viaProxy = async () => {
      const daemon = await stack!.startJob(4);
      try {
        const from = { url: daemon.url, publicKey: stack!.server.publicKey };
        return (await timed(() => substituteIntoFreshStore(closure!.root!, from))).seconds;
      } finally {
        await daemon.close();
      }
    };
    const repetitions = substitutionRepetitions(sizes);
    log(`S3 substitution: ${repetitions} repetitions of Sluice (redirects), the proxy and the public bucket`);
    const [redirected, direct, proxied] = await rotate(repetitions, [
      async () => (await timed(() => substituteIntoFreshStore(closure!.root!, viaSluice))).seconds,
      async () => (await timed(() => substituteIntoFreshStore(closure!.root!, fromBucket))).seconds,
      viaProxy,
    ]);
    return [
      {
        scenario: `S3 substitution: Nix substitutes a ${description} from Sluice on S3 + PostgreSQL (NARs by presigned redirect) vs from the same bucket as a public HTTP cache`,
        unit: 's',
        sluice: { samples: redirected! },
        baseline: { samples: direct! },
        target: TARGET,
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.15,
      },
      {
        scenario: `S3 substitution through the proxy: Nix substitutes the same closure through the Action's proxy (NAR links: one redirect, proxy → bucket) vs from the bucket as a public HTTP cache`,
        unit: 's',
        sluice: { samples: proxied! },
        baseline: { samples: direct! },
        target: TARGET,
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.15,
        note: 'the daemon starts before the clock does (as in the substitution scenario)',
      },
    ];
  } catch (error) {
    return s3SubstitutionUnavailable(reason(error));
  } finally {
    await stack?.close();
    if (bucket) await dropBucket(bucket);
    if (closure) await deletePaths(closure);
  }
}
