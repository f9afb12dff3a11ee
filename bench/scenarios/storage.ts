/**
 * The scale-out backends: 10,000 narinfo lookups (half hits, through the proxy) against a server on
 * PostgreSQL vs the same against a server on SQLite, in the same run. PostgreSQL comes from
 * scripts/services (a throw-away cluster on a free port, or SLUICE_TEST_DATABASE_URL).
 */
import type { Context } from '../lib/context.js';
import { buildPaths } from '../lib/closures.js';
import { lookupRequests } from '../lib/hashes.js';
import { expectHitsAndMisses, getAll } from '../lib/load.js';
import type { Row, Side } from '../lib/report.js';
import { reason } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { rotate } from '../lib/stats.js';
// @ts-expect-error: a JavaScript module without types (shared with jest's global setup).
import { startTestServices, stopTestServices } from '../../scripts/services/test-services.js';

async function seed(stack: Stack, paths: string[]): Promise<void> {
  const seeder = await stack.startJob();
  try {
    await seeder.drain(paths);
  } finally {
    await seeder.close();
  }
}

export async function storageScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const env: Record<string, string | undefined> = { ...process.env };
  const stacks: Stack[] = [];
  try {
    await (startTestServices as (env: object) => Promise<void>)(env);
    const known = await buildPaths([{ count: sizes.lookups / 2, bytes: 1024 }]);
    const sqlite = await startStack(context, ['cli', 'proxy']);
    stacks.push(sqlite);
    const postgres = await startStack(
      context,
      ['cli', 'proxy'],
      `database: '${env.SLUICE_TEST_DATABASE_URL}'\n`,
    );
    stacks.push(postgres);
    log(`storage: pushing ${known.paths.length} paths to each server`);
    await Promise.all([seed(sqlite, known.paths), seed(postgres, known.paths)]);
    const lookups = (stack: Stack) => async () => {
      const daemon = await stack.startJob();
      try {
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
        scenario: `narinfo lookups on PostgreSQL: ${sizes.lookups.toLocaleString('en-US')} distinct GETs, half hits (vs the same on SQLite)`,
        unit: 's',
        sluice: { samples: onPostgres! },
        baseline: { samples: onSqlite! },
        target: '≤ 1.3× SQLite',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.3,
      },
    ];
  } catch (error) {
    const unavailable: Side = { unavailable: reason(error) };
    return [
      {
        scenario: 'narinfo lookups on PostgreSQL vs SQLite',
        unit: 's',
        sluice: unavailable,
        baseline: unavailable,
        target: '≤ 1.3× SQLite',
      },
    ];
  } finally {
    for (const stack of stacks) await stack.close();
    await (stopTestServices as (env: object) => Promise<void>)(env);
  }
}
