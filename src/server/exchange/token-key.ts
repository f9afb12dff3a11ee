/**
 * The server token key: the ed25519 key that signs cache tokens. It is not the narinfo signing key
 * (that one is public by design; this one only ever signs tokens), and it never leaves the data dir.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** The file name of the token key inside the data directory. */
export const TOKEN_KEY_FILE = 'token-key.pem';

export function tokenKeyPath(dataDir: string): string {
  return join(dataDir, TOKEN_KEY_FILE);
}

export function parseTokenKey(pem: string, path: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${path}: the token key must be an ed25519 private key`);
  return key;
}

/**
 * Loads the token key at `path`, creating it (mode 0600) on first use. `created` tells the caller
 * that tokens signed by an earlier key (if any) no longer verify.
 */
export async function loadOrCreateTokenKey(path: string): Promise<{ key: KeyObject; created: boolean }> {
  try {
    return { key: parseTokenKey(await readFile(path, 'utf8'), path), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  // Written whole to a private temp file, then linked into place: `link` fails if another process
  // created the key a moment ago, and nobody ever reads a half-written key.
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(temp, 'wx', 0o600);
  try {
    await file.writeFile(pem);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temp, path);
    return { key: privateKey, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { key: parseTokenKey(await readFile(path, 'utf8'), path), created: false };
  } finally {
    await unlink(temp);
  }
}
