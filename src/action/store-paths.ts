/**
 * The store's entries at the start of the job, so the post step can find paths the post-build hook
 * did not see (builds by a daemon without our hook, `nix copy` from elsewhere, ...).
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './command.js';

export function storeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NIX_STORE_DIR || '/nix/store';
}

function listStore(dir: string): string[] {
  // Derivations and temporary/lock entries are never pushed.
  return readdirSync(dir).filter(
    (name) => /^[0-9a-z]{32}-/.test(name) && !name.endsWith('.drv') && !name.endsWith('.lock'),
  );
}

/**
 * How long the store directory must have gone unchanged before the main step for its timestamps to
 * stand for its entries: wider than any file system's mtime granularity (FAT: 2 s) and small
 * clock differences. A store that changed more recently is always listed again.
 */
const QUIET_MS = 5_000;
/** The first line of the record: the directory's identity and timestamps, never a store entry's name. */
const SNAPSHOT_PREFIX = '#store ';

function snapshot(dir: string): { line: string; mtimeMs: number } {
  const stat = statSync(dir, { bigint: true });
  return {
    line: `${SNAPSHOT_PREFIX}${stat.dev} ${stat.ino} ${stat.mtimeNs} ${stat.ctimeNs}`,
    mtimeMs: Number(stat.mtimeMs),
  };
}

/** Lists the store into `file`; returns the number of entries. */
export function recordStore(file: string, env: NodeJS.ProcessEnv = process.env): number {
  const dir = storeDir(env);
  const startedAt = Date.now();
  const before = snapshot(dir);
  const names = listStore(dir);
  // Kept only when the directory had been quiet and did not change while it was listed.
  const quiet = startedAt - before.mtimeMs > QUIET_MS && snapshot(dir).line === before.line;
  writeFileSync(file, [...(quiet ? [before.line] : []), ...names].join('\n'));
  return names.length;
}

/** Whether `record` (what `recordStore` wrote) opens with the store directory's snapshot as it is now. */
function unchangedSince(record: string, dir: string): boolean {
  const end = record.indexOf('\n');
  return (end === -1 ? record : record.slice(0, end)) === snapshot(dir).line;
}

/**
 * Whether the store directory is as it was when `recordStore` wrote `file`: adding or removing an
 * entry changes its mtime and ctime. Listing a big store (300,000 entries: 0.6 s on a VM) is most
 * of a post step that has nothing new to push.
 */
export function storeUnchanged(file: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return unchangedSince(readFileSync(file, 'utf8'), storeDir(env));
}

/** Full store paths that appeared since `recordStore` wrote `file`. */
export function newStorePaths(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = storeDir(env);
  const record = readFileSync(file, 'utf8');
  if (unchangedSince(record, dir)) return [];
  const before = new Set(record.split('\n'));
  return listStore(dir)
    .filter((name) => !before.has(name))
    .map((name) => join(dir, name));
}

/**
 * The paths Nix has registered as valid: an entry can be in the store directory without being a
 * path yet (a build still writing it) or any more (being deleted), and those cannot be pushed.
 */
export async function validPaths(paths: string[], env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const invalid = new Set<string>();
  try {
    for (let i = 0; i < paths.length; i += 500) {
      const stdout = await runCommand(
        'nix-store',
        ['--check-validity', '--print-invalid', ...paths.slice(i, i + 500)],
        { env, timeoutMs: 60_000, quiet: true },
      );
      for (const line of stdout.split('\n')) if (line) invalid.add(line);
    }
  } catch {
    // Unchecked paths are still worth offering: the daemon reports the ones it cannot push.
  }
  return paths.filter((path) => !invalid.has(path));
}
