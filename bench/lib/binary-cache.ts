/** The local limits Sluice is compared with: `nix copy` to a file:// cache and substituting from one. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNixMachine, nix, type NixMachine } from '../../__tests__/support/nix.js';

export interface SigningKey {
  secretKeyFile: string;
  publicKey: string;
}

/** A binary-cache signing key, so the file:// side verifies signatures just as Sluice's side does. */
export async function makeSigningKey(dir: string, name = 'sluice-bench-file-1'): Promise<SigningKey> {
  const secretKeyFile = join(dir, 'cache.sk');
  const publicKeyFile = join(dir, 'cache.pk');
  await nix('nix-store', ['--generate-binary-cache-key', name, secretKeyFile, publicKeyFile]);
  return { secretKeyFile, publicKey: readFileSync(publicKeyFile, 'utf8').trim() };
}

export function fileCacheUrl(dir: string, key: SigningKey, compression = 'zstd'): string {
  return `file://${dir}?compression=${compression}&secret-key=${key.secretKeyFile}`;
}

/** `nix copy --to file://dir?compression=…` of `paths`: the push baseline. */
export async function copyToFileCache(paths: string[], dir: string, key: SigningKey): Promise<void> {
  await nix('nix', ['copy', '--to', fileCacheUrl(dir, key), ...paths]);
}

export interface Substituter {
  url: string;
  publicKey: string;
  /** A netrc file with credentials for `url`, when it needs them. */
  netrcFile?: string;
}

/**
 * Substitutes `root`'s closure into a fresh, empty store (a new CI machine), so every path is
 * fetched: narinfos, NARs, decompression, hash checks and registration, exactly as `nix build`
 * does when everything is cached. The store and the Nix machine are thrown away afterwards.
 */
export async function substituteIntoFreshStore(root: string, from: Substituter): Promise<void> {
  const storeDir = mkdtempSync(join(tmpdir(), 'sluice-bench-store-'));
  // Nix's default narinfo TTLs, as on a CI runner: the test config's 0 makes Nix re-query every
  // narinfo several times during one substitution (its in-memory cache honours the same TTL).
  const machine: NixMachine = makeNixMachine(
    'narinfo-cache-positive-ttl = 2592000\nnarinfo-cache-negative-ttl = 3600\n',
  );
  const options = [
    ['substituters', from.url],
    ['trusted-public-keys', from.publicKey],
    ...(from.netrcFile ? [['netrc-file', from.netrcFile]] : []),
  ].flatMap(([name, value]) => ['--option', name!, value!]);
  try {
    await nix('nix-store', ['--store', storeDir, '--realise', root, ...options], { machine });
  } finally {
    rmSync(storeDir, { recursive: true, force: true });
    rmSync(machine.dir, { recursive: true, force: true });
  }
}
