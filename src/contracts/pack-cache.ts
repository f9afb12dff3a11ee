/**
 * The GitHub Actions cache through @actions/cache, one restore or save of a pack at a time.
 * @actions/cache works relative to the process's cwd and GITHUB_WORKSPACE (where it tars from and
 * extracts to), so each call runs inside the pack's own directory. It logs every failure to
 * reserve an entry (409, 429, 5xx) as the same vague line and keeps the cause for debug output:
 * the cause is caught from its output here, so the job summary can say what really happened.
 */
import { PACK_CACHE_PATHS, PACK_DIR } from './pack-api.js';

export type CacheOutcome =
  { ok: true; key: string } | { ok: false; missing: true } | { ok: false; missing?: false; error: string };

/** Lines @actions/cache writes that carry the real cause of a failure. */
const CAUSES = [
  /::debug::Failed to reserve cache: (.*)$/,
  /Cache reservation failed: (.*)$/,
  /Failed to (?:save|restore): (.*)$/,
  /::(?:warning|error)::(.*)$/,
];

/** Runs `fn` inside `dir`, with stdout also read for the causes @actions/cache only logs. */
async function inside<T>(
  dir: string,
  fn: () => Promise<T>,
  tempDir?: string,
): Promise<{ value: T; causes: string[] }> {
  const cwd = process.cwd();
  const workspace = process.env.GITHUB_WORKSPACE;
  const runnerTemp = process.env.RUNNER_TEMP;
  const write = process.stdout.write.bind(process.stdout);
  const causes: string[] = [];
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    const text = String(chunk);
    for (const line of text.split('\n')) {
      for (const pattern of CAUSES) {
        const match = pattern.exec(line);
        if (match) {
          causes.push(decodeURIComponent(match[1]!.replace(/%(?![0-9A-F]{2})/g, '%25')));
          break;
        }
      }
    }
    // Its warnings and errors would become annotations of their own; Sluice reports the cause once.
    return write(text.replace(/^::(warning|error)::/gm, '@actions/cache $1: '), ...rest);
  }) as typeof process.stdout.write;
  process.chdir(dir);
  process.env.GITHUB_WORKSPACE = dir;
  if (tempDir) process.env.RUNNER_TEMP = tempDir;
  try {
    return { value: await fn(), causes };
  } finally {
    process.stdout.write = write;
    process.chdir(cwd);
    restoreEnv('GITHUB_WORKSPACE', workspace);
    restoreEnv('RUNNER_TEMP', runnerTemp);
  }
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/** The most telling cause: the first specific one (a debug line names the HTTP status). */
function cause(causes: string[], fallback: string): string {
  return causes.find((c) => /\(\d{3}\)|\d{3}|status|Too Many|already/i.test(c)) ?? causes[0] ?? fallback;
}

/**
 * Asks the tar that @actions/cache runs once the download is done (`tar -xf … -P -C <dir>`, with
 * `process.env` as it is then) to leave `member` out: GNU tar reads TAR_OPTIONS before its
 * arguments. Only for the restore in progress: `restorePack` puts TAR_OPTIONS back when it
 * returns. bsdtar (macOS without gtar) ignores TAR_OPTIONS and extracts everything, as before.
 */
export function skipWhenExtracting(member: string): void {
  const option = `--exclude=${member}`;
  if (/\s/.test(member)) throw new Error(`'${member}' cannot be passed in TAR_OPTIONS`);
  const current = process.env.TAR_OPTIONS;
  if (current?.split(/\s+/).includes(option)) return;
  process.env.TAR_OPTIONS = current ? `${current} ${option}` : option;
}

/**
 * Keeps every member the restore's tar writes inside `<dir>/sluice-pack/`. @actions/cache extracts
 * with `-P`, so GNU tar would follow a member named `/home/runner/.bashrc` or `../../x`, or one
 * written through a symlink member, wherever it points: anyone who can write the cache scope could
 * write any file the runner user can. Each name (and link target) is cut to its last component
 * (`.` and `..` become `dot`) under `sluice-pack/`; a real pack's two names are unchanged.
 * Backslashes would be eaten by TAR_OPTIONS's word splitting: `[.]`, not `\.`.
 */
export const CONFINE_TO_PACK_DIR = `--transform=s,/*$,,;s,^.*/,,;s,^[.]*$,dot,;s,^,${PACK_DIR}/,`;

/**
 * One GetCacheEntryDownloadURL call, then the download (into a new directory below `tempDir`,
 * where stream-restore.ts reads it as it lands) and extraction into `<dir>/sluice-pack/` (less
 * what `skipWhenExtracting` left out meanwhile).
 */
export async function restorePack(
  dir: string,
  key: string,
  restoreKeys: string[],
  tempDir?: string,
): Promise<CacheOutcome> {
  const cache = await import('@actions/cache');
  const tarOptions = process.env.TAR_OPTIONS;
  // Last, so that no transform of the runner's own TAR_OPTIONS comes after it.
  process.env.TAR_OPTIONS = tarOptions ? `${tarOptions} ${CONFINE_TO_PACK_DIR}` : CONFINE_TO_PACK_DIR;
  try {
    const { value, causes } = await inside(
      dir,
      () => cache.restoreCache([...PACK_CACHE_PATHS], key, restoreKeys),
      tempDir,
    );
    if (value !== undefined) return { ok: true, key: value };
    if (causes.length > 0) return { ok: false, error: cause(causes, 'the restore failed') };
    return { ok: false, missing: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    restoreEnv('TAR_OPTIONS', tarOptions);
  }
}

/** CreateCacheEntry, the upload, FinalizeCacheEntryUpload: saves `<dir>/sluice-pack/` as `key`. */
export async function savePack(dir: string, key: string): Promise<CacheOutcome> {
  const cache = await import('@actions/cache');
  try {
    const { value, causes } = await inside(dir, () => cache.saveCache([...PACK_CACHE_PATHS], key));
    if (value !== -1) return { ok: true, key };
    return { ok: false, error: cause(causes, 'the cache service did not take the pack') };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
