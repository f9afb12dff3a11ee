/** Helpers shared by the src/nix tests: binary caches written by the real `nix copy`. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nix } from '../support/nix.js';

export interface PathInfoJson {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string;
  signatures?: string[];
}

export async function pathInfo(paths: string[], extraArgs: string[] = []): Promise<PathInfoJson[]> {
  return JSON.parse(await nix('nix', ['path-info', '--json', ...extraArgs, ...paths])) as PathInfoJson[];
}

const fileCaches: string[] = [];

/** `nix copy --to file://<new dir>?<params>`; returns the cache dir (removed by removeFileCaches). */
export async function copyToFileCache(paths: string[], params: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-file-cache-'));
  fileCaches.push(dir);
  await nix('nix', ['copy', '--to', `file://${dir}?${params}`, ...paths]);
  return dir;
}

/** The narinfo files of a file:// cache, by hash part. */
export function readNarInfos(cacheDir: string): Map<string, string> {
  const infos = new Map<string, string>();
  for (const file of readdirSync(cacheDir)) {
    if (file.endsWith('.narinfo'))
      infos.set(file.slice(0, -'.narinfo'.length), readFileSync(join(cacheDir, file), 'utf8'));
  }
  return infos;
}

export function hashPartOf(storePath: string): string {
  return storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
}

/** Removes every cache copyToFileCache made in this test file (call in afterAll). */
export function removeFileCaches(): void {
  for (const dir of fileCaches.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * `nix-store --realise path` into a fresh, empty store (a new machine's), substituting only from
 * `file://cacheDir` and trusting only `publicKey`. `inspect` sees the fresh store's root before it is
 * removed. Returns what nix-store printed (the realised path).
 */
export async function substituteIntoFreshStore(
  cacheDir: string,
  publicKey: string,
  path: string,
  inspect: (storeRoot: string) => void = () => {},
): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), 'sluice-fresh-store-'));
  try {
    const out = await nix('nix-store', [
      '--store',
      store,
      '--realise',
      path,
      '--option',
      'substituters',
      `file://${cacheDir}`,
      '--option',
      'trusted-public-keys',
      publicKey,
    ]);
    inspect(store);
    return out.trim();
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}
