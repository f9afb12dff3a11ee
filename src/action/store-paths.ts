/**
 * The store's entries at the start of the job, so the post step can find paths the post-build hook
 * did not see (builds by a daemon without our hook, `nix copy` from elsewhere, ...).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

export function recordStore(file: string, env: NodeJS.ProcessEnv = process.env): number {
  const names = listStore(storeDir(env));
  writeFileSync(file, names.join('\n'));
  return names.length;
}

/** Full store paths that appeared since `recordStore` wrote `file`. */
export function newStorePaths(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = storeDir(env);
  const before = new Set(readFileSync(file, 'utf8').split('\n'));
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
