/**
 * The GitHub Actions cache as the benchmark's GitHub-cache-mode jobs see it: the tests' stand-in of
 * the cache service (Twirp JSON, GitHub's scope rules) in front of the real Azurite, and the
 * baseline's plain `@actions/cache` restore of an entry.
 */
import { existsSync } from 'node:fs';
import { startAzurite, type Azurite } from '../../__tests__/support/azurite.js';
import { startCacheService, type CacheService, type Scope } from '../../__tests__/support/cache-service.js';
import { restorePack } from '../../src/contracts/pack-cache.js';

/** Azurite's port: SLUICE_BENCH_AZURITE_PORT, so a benchmark keeps clear of test runs' Azurites. */
export const DEFAULT_BENCH_AZURITE_PORT = 10140;

export interface ActionsCache {
  service: CacheService;
  azurite: Azurite;
  close(): Promise<void>;
}

export async function startActionsCache(): Promise<ActionsCache> {
  const port = Number(process.env.SLUICE_BENCH_AZURITE_PORT ?? DEFAULT_BENCH_AZURITE_PORT);
  const azurite = await startAzurite(port);
  try {
    const service = await startCacheService(azurite);
    return {
      service,
      azurite,
      close: async () => {
        await service.close();
        await azurite.close();
      },
    };
  } catch (error) {
    await azurite.close();
    throw error;
  }
}

/** The variables @actions/cache reads, as the runner sets them for a job on `scope`. */
function runnerCacheEnv(service: CacheService, scope: Scope): Record<string, string> {
  return {
    ACTIONS_RESULTS_URL: service.url,
    ACTIONS_RUNTIME_TOKEN: service.tokenFor(scope),
    ACTIONS_CACHE_SERVICE_V2: 'True',
    GITHUB_SERVER_URL: 'https://github.com',
  };
}

/**
 * `@actions/cache`'s `restoreCache` of the entry `key` into `dir` (one lookup call, the download,
 * tar extracting it), in this process, its log lines kept off the benchmark's stdout. Throws
 * unless the entry's files are there afterwards.
 */
export async function restorePlainArchive(
  service: CacheService,
  scope: Scope,
  key: string,
  dir: string,
  tempDir: string,
): Promise<void> {
  const env = runnerCacheEnv(service, scope);
  const before = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  const write = process.stdout.write.bind(process.stdout);
  Object.assign(process.env, env);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    const outcome = await restorePack(dir, key, [], tempDir);
    if (!outcome.ok) throw new Error(`@actions/cache did not restore ${key}: ${JSON.stringify(outcome)}`);
    if (!existsSync(`${dir}/sluice-pack/nars.zst`)) throw new Error('@actions/cache restored no nars.zst');
  } finally {
    process.stdout.write = write;
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
