/**
 * The server's two keys: the narinfo signing key and the token key. By default both live in the
 * data directory (created on first start). Replicas share them through files named in the config
 * (`keys.signing_key_file`, `keys.token_key_file`), which `sluice keys generate DIR` writes; a named
 * file must exist, as a replica that made up its own key would sign what the others cannot verify.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSecretKey, parseSecretKey, type SecretKey } from '../nix/signing.js';
import { ConfigError, type Config } from './config/config-schema.js';
import { loadOrCreateTokenKey, parseTokenKey, tokenKeyPath } from './exchange/index.js';
import { defaultKeyName, loadOrCreateSigningKey } from './signing-key.js';

export interface ServerKeys {
  signingKey: SecretKey;
  tokenKey: KeyObject;
  /** Named key files that others than their owner may read: worth a warning at start. */
  exposedKeyFiles: string[];
}

/**
 * Whether a key file is readable by its group or by everyone. A warning, not a refusal: Kubernetes
 * mounts secrets 0644 by default, inside a container only the server's user sees.
 */
async function exposed(path: string): Promise<boolean> {
  return ((await stat(path)).mode & 0o044) !== 0;
}

async function readKeyFile<T>(key: string, path: string, parse: (text: string) => T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file (sluice keys generate DIR writes one)' : (code ?? String(error));
    throw new ConfigError(`keys.${key}: cannot read ${path}: ${why}`);
  }
  try {
    return parse(text.trim());
  } catch (error) {
    throw new ConfigError(`keys.${key}: ${path}: ${(error as Error).message.split('\n', 1)[0]}`);
  }
}

export async function loadServerKeys(config: Config, dataDir: string): Promise<ServerKeys> {
  const { signingKeyFile, tokenKeyFile } = config.keys;
  const signingKey = signingKeyFile
    ? await readKeyFile('signing_key_file', signingKeyFile, parseSecretKey)
    : await loadOrCreateSigningKey(dataDir, defaultKeyName(config.publicUrl));
  const tokenKey = tokenKeyFile
    ? await readKeyFile('token_key_file', tokenKeyFile, (pem) => parseTokenKey(pem, tokenKeyFile))
    : (await loadOrCreateTokenKey(tokenKeyPath(dataDir))).key;
  const named = [signingKeyFile, tokenKeyFile].filter((path) => path !== undefined);
  const exposedKeyFiles: string[] = [];
  for (const path of named) if (await exposed(path)) exposedKeyFiles.push(path);
  return { signingKey, tokenKey, exposedKeyFiles };
}

/** The token key's file for tools that sign tokens (`sluice token create`): the config's, else the data dir's. */
export function tokenKeyFileOf(config: Config): string {
  return config.keys.tokenKeyFile ?? tokenKeyPath(config.data);
}

export const GENERATED_KEY_FILES = {
  signing: 'signing-key.sec',
  public: 'signing-key.pub',
  token: 'token-key.pem',
} as const;

/** Writes a new key pair set into `dir`; refuses to overwrite (a replaced key breaks every replica). */
export async function generateKeyFiles(
  dir: string,
  name: string,
): Promise<{ publicKey: string; files: string[] }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const signingKey = generateSecretKey(name);
  const { privateKey } = generateKeyPairSync('ed25519');
  const files: [string, string, number][] = [
    [GENERATED_KEY_FILES.signing, signingKey.text, 0o600],
    [GENERATED_KEY_FILES.token, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600],
    [GENERATED_KEY_FILES.public, `${signingKey.publicKey.text}\n`, 0o644],
  ];
  for (const [file] of files) {
    const existing = await open(join(dir, file), 'r').catch(() => undefined);
    if (existing) {
      await existing.close();
      throw new Error(`${join(dir, file)} exists: keys are never overwritten (move it away first)`);
    }
  }
  for (const [file, text, mode] of files) {
    const handle = await open(join(dir, file), 'wx', mode);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return { publicKey: signingKey.publicKey.text, files: files.map(([file]) => join(dir, file)) };
}
