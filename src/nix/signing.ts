/**
 * Nix binary cache signatures: ed25519 over a path's fingerprint, keys in Nix's `name:base64` files.
 * A secret key is `name:base64(seed ‖ public key)` (64 bytes), a public key `name:base64(public key)`.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { Hash } from './hash.js';
import type { NarInfo } from './narinfo.js';
import { DEFAULT_STORE_DIR } from './store-path.js';

// DER prefixes that wrap a raw 32-byte ed25519 key as PKCS#8 (private) and SPKI (public).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export class KeyError extends Error {}

export interface PublicKey {
  name: string;
  key: KeyObject;
  /** The `name:base64` form, as in `trusted-public-keys`. */
  text: string;
}

export interface SecretKey {
  name: string;
  key: KeyObject;
  publicKey: PublicKey;
  /** The `name:base64` form, as written by `nix-store --generate-binary-cache-key`. */
  text: string;
}

function splitKey(text: string, what: string): [string, Buffer] {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon <= 0) throw new KeyError(`${what} must be 'name:base64'`);
  const name = trimmed.slice(0, colon);
  const encoded = trimmed.slice(colon + 1);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new KeyError(`${what} '${name}' is not valid base64`);
  return [name, Buffer.from(encoded, 'base64')];
}

function publicKeyFromRaw(name: string, raw: Buffer): PublicKey {
  const key = createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
  return { name, key, text: `${name}:${raw.toString('base64')}` };
}

export function parsePublicKey(text: string): PublicKey {
  const [name, raw] = splitKey(text, 'public key');
  if (raw.length !== 32) throw new KeyError(`public key '${name}' must be 32 bytes, got ${raw.length}`);
  return publicKeyFromRaw(name, raw);
}

export function parseSecretKey(text: string): SecretKey {
  const [name, raw] = splitKey(text, 'secret key');
  if (raw.length !== 64) throw new KeyError(`secret key '${name}' must be 64 bytes, got ${raw.length}`);
  const seed = raw.subarray(0, 32);
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const derivedPublic = rawPublicKey(createPublicKey(key));
  if (!derivedPublic.equals(raw.subarray(32))) {
    throw new KeyError(`secret key '${name}' does not match the public key stored in it`);
  }
  return {
    name,
    key,
    publicKey: publicKeyFromRaw(name, derivedPublic),
    text: `${name}:${raw.toString('base64')}`,
  };
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
}

/** A fresh key pair, like `nix-store --generate-binary-cache-key name`. */
export function generateSecretKey(name: string): SecretKey {
  if (!name || name.includes(':'))
    throw new KeyError(`key name '${name}' must be non-empty and contain no ':'`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length);
  return parseSecretKey(`${name}:${Buffer.concat([seed, rawPublicKey(publicKey)]).toString('base64')}`);
}

/**
 * The string Nix signs: `1;<store path>;<nar hash>;<nar size>;<references as full paths, comma-separated>`.
 * `narHash` is a Hash or any text form of one (written as `sha256:<nix32>`); `references` are base
 * names. Nix holds references in a sorted set, so they are sorted and deduplicated here too: a
 * narinfo listing them in another order still gets the signature Nix expects.
 */
export function fingerprint(
  storePath: string,
  narHash: Hash | string,
  narSize: number,
  references: readonly string[],
  storeDir = DEFAULT_STORE_DIR,
): string {
  const hash = typeof narHash === 'string' ? Hash.parse(narHash) : narHash;
  const dir = storeDir.replace(/\/+$/, '');
  const refs = [...new Set(references)]
    .sort()
    .map((r) => `${dir}/${r}`)
    .join(',');
  return `1;${storePath};${hash.toString()};${narSize};${refs}`;
}

/** The fingerprint of a narinfo, the text its `Sig:` lines sign. */
export function narInfoFingerprint(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  return fingerprint(info.storePath, info.narHash, info.narSize, info.references, storeDir);
}

/** Signs a fingerprint; returns a `Sig:` value, `name:base64(signature)`. */
export function signFingerprint(fp: string, secretKey: SecretKey): string {
  return `${secretKey.name}:${sign(null, Buffer.from(fp), secretKey.key).toString('base64')}`;
}

/** True when `sig` (`name:base64`) is a valid signature of `fp` by the key of that name among `keys`. */
export function verifyFingerprint(fp: string, sig: string, keys: readonly PublicKey[]): boolean {
  const colon = sig.indexOf(':');
  if (colon <= 0) return false;
  const name = sig.slice(0, colon);
  const signature = Buffer.from(sig.slice(colon + 1), 'base64');
  if (signature.length !== 64) return false;
  return keys.some((k) => k.name === name && verify(null, Buffer.from(fp), k.key, signature));
}
