/**
 * The scale-out backends, each beside its baseline: pushing to S3 + PostgreSQL vs PutObject with the
 * SDK, the server's memory while a big NAR streams into the bucket, substituting through presigned
 * redirects vs the bucket as a public cache (s3-push.ts, s3-substitution.ts), and 10,000 narinfo
 * lookups (half hits, through the proxy) against a server on PostgreSQL vs one on SQLite.
 * PostgreSQL and Ceph RGW come from scripts/services (throw-away ones, or those that
 * SLUICE_TEST_DATABASE_URL / SLUICE_TEST_S3_ENDPOINT name); when they cannot start, every row says why.
 */
import type { Context } from '../lib/context.js';
import { buildPaths, deletePaths, type Closure } from '../lib/closures.js';
import { lookupRequests } from '../lib/hashes.js';
import { expectHitsAndMisses, getAll } from '../lib/load.js';
import type { Row, Side } from '../lib/report.js';
import { reason } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { startBackends, type Backends } from '../lib/services.js';
import { rotate } from '../lib/stats.js';
import { s3PushScenarios, s3PushUnavailable } from './s3-push.js';
import { s3SubstitutionScenarios, s3SubstitutionUnavailable } from './s3-substitution.js';

async function seed(stack: Stack, paths: string[]): Promise<void> {
  const seeder = await stack.startJob();
  try {
    await seeder.drain(paths);
  } finally {
    await seeder.close();
  }
}

const LOOKUP_TARGET = '≤ 1.3× SQLite';

function lookupsUnavailable(why: string): Row[] {
  const unavailable: Side = { unavailable: why };
  return [
    {
      scenario: 'narinfo lookups on PostgreSQL vs SQLite',
      unit: 's',
      sluice: unavailable,
      baseline: unavailable,
      target: LOOKUP_TARGET,
    },
  ];
}

export async function storageScenarios(context: Context): Promise<Row[]> {
  let backends: Backends;
  try {
    context.log('storage: starting PostgreSQL and Ceph RGW (scripts/services)');
    backends = await startBackends();
  } catch (error) {
    const why = reason(error);
    return [...s3PushUnavailable(why), ...s3SubstitutionUnavailable(why), ...lookupsUnavailable(why)];
  }
  // A group that fails (the test Ceph full, a service gone) leaves it and the groups after it
  // unmeasured, each row saying why; the run goes on with the other scenarios.
  const groups = [
    { measure: () => s3PushScenarios(context, backends), unavailable: s3PushUnavailable },
    { measure: () => s3SubstitutionScenarios(context, backends), unavailable: s3SubstitutionUnavailable },
    { measure: () => postgresLookups(context, backends), unavailable: lookupsUnavailable },
  ];
  const rows: Row[] = [];
  try {
    for (const [index, group] of groups.entries()) {
      try {
        rows.push(...(await group.measure()));
      } catch (error) {
        const why = `not measured: ${reason(error)}`;
        context.log(`storage: ${why}`);
        for (const rest of groups.slice(index)) rows.push(...rest.unavailable(why));
        break;
      }
    }
    return rows;
  } finally {
    await backends.close();
  }
}

async function postgresLookups(context: Context, backends: Backends): Promise<Row[]> {
  const { sizes, log } = context;
  const stacks: Stack[] = [];
  let built: Closure | undefined;
  try {
    const known = await buildPaths([{ count: sizes.lookups / 2, bytes: 1024 }]);
    built = known;
    const sqlite = await startStack(context, ['cli', 'proxy']);
    stacks.push(sqlite);
    const postgres = await startStack(
      context,
      ['cli', 'proxy'],
      `database: '${await backends.database()}'\n`,
    );
    stacks.push(postgres);
    log(`storage: pushing ${known.paths.length} paths to each server`);
    await Promise.all([seed(sqlite, known.paths), seed(postgres, known.paths)]);
    const lookups = (stack: Stack) => async () => {
      const daemon = await stack.startJob();
      try {
        // A real job's daemon has its narinfo set long before Nix asks: so does this one.
        await daemon.lookupSetLoaded();
        const requests = lookupRequests(known.paths, sizes.lookups);
        const result = await getAll(daemon.url, requests.paths);
        expectHitsAndMisses(result, requests.hits, sizes.lookups, 'the proxy');
        return result.seconds;
      } finally {
        await daemon.close();
      }
    };
    log(`storage: ${sizes.lookups} lookups, PostgreSQL vs SQLite`);
    const [onPostgres, onSqlite] = await rotate(sizes.repetitions, [lookups(postgres), lookups(sqlite)]);
    return [
      {
        scenario: `narinfo lookups on PostgreSQL: ${sizes.lookups.toLocaleString('en-US')} distinct GETs, half hits, through the proxy (vs the same on SQLite)`,
        unit: 's',
        sluice: { samples: onPostgres! },
        baseline: { samples: onSqlite! },
        target: LOOKUP_TARGET,
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.3,
      },
    ];
  } catch (error) {
    return lookupsUnavailable(reason(error));
  } finally {
    for (const stack of stacks) await stack.close();
    if (built) await deletePaths(built);
  }
}
