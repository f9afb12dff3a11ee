/**
 * The narinfo signing key, in the data directory in `nix-store --generate-binary-cache-key` format:
 * `signing-key.sec` (mode 0600) and `signing-key.pub`. Created on first start, reused after.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, mkdir, open, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSecretKey, parseSecretKey, type SecretKey } from '../nix/signing.js';

export const SIGNING_KEY_FILE = 'signing-key.sec';
export const PUBLIC_KEY_FILE = 'signing-key.pub';

/**
 * A key name unlikely to clash with another cache's: Nix keeps trusted keys by name, so two caches
 * both calling their key `sluice-1` could not both be trusted.
 */
export function defaultKeyName(publicUrl?: string): string {
  const host = publicUrl ? new URL(publicUrl).hostname : hostname();
  const safe = host.replace(/[^A-Za-z0-9.-]/g, '-').replace(/^-+|-+$/g, '') || 'localhost';
  return `${safe}-sluice-1`;
}

export async function loadOrCreateSigningKey(dataDir: string, name: string): Promise<SecretKey> {
  const path = join(dataDir, SIGNING_KEY_FILE);
  try {
    return parseSecretKey(await readFile(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new Error(`${path}: ${(error as Error).message}`);
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = generateSecretKey(name);
  // Whole file first, then linked into place: `link` fails if another process just created one.
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(temp, 'wx', 0o600);
  try {
    await file.writeFile(key.text);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return parseSecretKey(await readFile(path, 'utf8'));
  } finally {
    await unlink(temp);
  }
  await writeFile(join(dataDir, PUBLIC_KEY_FILE), `${key.publicKey.text}\n`, { mode: 0o644 });
  return key;
}
