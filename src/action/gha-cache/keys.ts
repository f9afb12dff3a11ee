/**
 * The cache keys of packs. GitHub scopes cache entries by ref: a job reads entries of its own ref,
 * of the base branch (pull requests) and of the default branch, and writes only its own. The keys
 * say the same, so a restore asks for the newest pack of the job's own ref first, then the base
 * branch's, then the default branch's, and one GetCacheEntryDownloadURL call asks for all three.
 * `:` separates the parts: git refuses it in ref names, so one ref's prefix never matches another.
 */
import { readFileSync } from 'node:fs';

/** Bump when the pack format changes incompatibly. */
const KEY_VERSION = 'sluice-pack-v1';

export interface PackKeys {
  /** Unique per run attempt: entries are immutable, a second save under one key answers 409. */
  saveKey: string;
  /** Prefixes, own ref first. */
  restoreKeys: string[];
  /** The ref whose scope the save lands in. */
  ref: string;
}

/** The repository's default branch, from the event payload the runner provides. */
function defaultBranch(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.GITHUB_EVENT_PATH) return undefined;
  try {
    const event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) as {
      repository?: { default_branch?: unknown };
    };
    const branch = event.repository?.default_branch;
    return typeof branch === 'string' && branch !== '' ? branch : undefined;
  } catch {
    return undefined;
  }
}

/** Keys must not hold commas (@actions/cache splits on them) and stay within 512 characters. */
function clean(part: string): string {
  return part.replace(/[,\s]/g, '_');
}

export function packKeys(env: NodeJS.ProcessEnv, userKey: string): PackKeys {
  const os = clean(env.RUNNER_OS || process.platform);
  const arch = clean(env.RUNNER_ARCH || process.arch);
  const prefix = `${KEY_VERSION}:${os}:${arch}:${clean(userKey)}:`;
  const ref = clean(env.GITHUB_REF || 'refs/heads/unknown');
  const refs = [ref];
  if (env.GITHUB_BASE_REF) refs.push(`refs/heads/${clean(env.GITHUB_BASE_REF)}`);
  const main = defaultBranch(env);
  if (main) refs.push(`refs/heads/${clean(main)}`);
  const run = `${clean(env.GITHUB_RUN_ID || String(Date.now()))}-${clean(env.GITHUB_RUN_ATTEMPT || '1')}`;
  return {
    saveKey: `${prefix}${ref}:${run}`.slice(0, 512),
    restoreKeys: [...new Set(refs)].map((r) => `${prefix}${r}:`.slice(0, 512)),
    ref,
  };
}

/** The runner's variables @actions/cache reads, handed to the daemon in its 0600 config file. */
export const CACHE_ENV_NAMES = [
  'ACTIONS_RESULTS_URL',
  'ACTIONS_RUNTIME_TOKEN',
  'ACTIONS_CACHE_SERVICE_V2',
  'ACTIONS_CACHE_URL',
  'ACTIONS_CACHE_MODE',
  'GITHUB_SERVER_URL',
  'RUNNER_TEMP',
] as const;

export function cacheEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(CACHE_ENV_NAMES.flatMap((name) => (env[name] ? [[name, env[name]]] : [])));
}
