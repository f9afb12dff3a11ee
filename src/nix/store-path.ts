/** Store paths: `<storeDir>/<32-char nix32 hash>-<name>`, validated as Nix does. */
import { isNix32, NIX32_CLASS } from './nix32.js';

export const DEFAULT_STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
/** A store path's hash part: 32 nix32 characters (160 bits). */
export const HASH_PART_PATTERN = new RegExp(`^${NIX32_CLASS}{${HASH_PART_LENGTH}}$`);
/** Nix's limit on the name after the hash and dash ("name must be less than 212 characters"). */
export const MAX_NAME_LENGTH = 211;

const NAME_PATTERN = /^[A-Za-z0-9+\-._?=]+$/;

export class StorePathError extends Error {}

/** Checks a store path hash part (the 32 nix32 characters); throws naming the problem. */
export function validateHashPart(hashPart: string): string {
  if (hashPart.length !== HASH_PART_LENGTH) {
    throw new StorePathError(`store path hash '${hashPart}' must be ${HASH_PART_LENGTH} characters`);
  }
  if (!isNix32(hashPart)) throw new StorePathError(`store path hash '${hashPart}' is not nix32`);
  return hashPart;
}

/**
 * Checks a store path name. Nix 2.8 itself accepts any name made of the allowed characters (so
 * `.hidden` is a path Nix builds); like later Nix versions we also refuse `.`, `..` and names whose
 * first dash-separated part is one of those, which only ever serve path tricks.
 */
export function validateName(name: string, baseName = name): string {
  if (name.length === 0) throw new StorePathError(`store path '${baseName}' has an empty name`);
  if (name.length > MAX_NAME_LENGTH) {
    throw new StorePathError(`store path name in '${baseName}' is longer than ${MAX_NAME_LENGTH} characters`);
  }
  const bad = NAME_PATTERN.test(name) ? undefined : [...name].find((c) => !NAME_PATTERN.test(c));
  if (bad !== undefined) {
    throw new StorePathError(
      `store path name in '${baseName}' has the character '${bad}' (allowed: A-Z a-z 0-9 + - . _ ? =)`,
    );
  }
  const firstPart = name.split('-', 1)[0];
  if (firstPart === '.' || firstPart === '..') {
    throw new StorePathError(`store path name in '${baseName}' must not start with '${firstPart}'`);
  }
  return name;
}

function normalizeStoreDir(storeDir: string): string {
  const trimmed = storeDir.replace(/\/+$/, '');
  const segments = trimmed.split('/').slice(1);
  if (!trimmed.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new StorePathError(
      `store dir '${storeDir}' must be an absolute, canonical directory other than '/'`,
    );
  }
  return trimmed;
}

export class StorePath {
  private constructor(
    readonly hashPart: string,
    readonly name: string,
  ) {}

  /** Parses a base name such as `l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b`. */
  static fromBaseName(baseName: string): StorePath {
    if (baseName.length < HASH_PART_LENGTH + 1 || baseName[HASH_PART_LENGTH] !== '-') {
      throw new StorePathError(`'${baseName}' is not a store path base name (<32-char hash>-<name>)`);
    }
    const hashPart = validateHashPart(baseName.slice(0, HASH_PART_LENGTH));
    const name = validateName(baseName.slice(HASH_PART_LENGTH + 1), baseName);
    return new StorePath(hashPart, name);
  }

  /** Parses a full path directly inside `storeDir` (default `/nix/store`). */
  static parse(path: string, storeDir = DEFAULT_STORE_DIR): StorePath {
    const prefix = `${normalizeStoreDir(storeDir)}/`;
    if (!path.startsWith(prefix))
      throw new StorePathError(`path '${path}' is not in the store '${storeDir}'`);
    const baseName = path.slice(prefix.length);
    if (baseName.includes('/'))
      throw new StorePathError(`path '${path}' is inside a store path, not a store path`);
    return StorePath.fromBaseName(baseName);
  }

  /** True when `path` is a valid store path in `storeDir`. */
  static isValid(path: string, storeDir = DEFAULT_STORE_DIR): boolean {
    try {
      StorePath.parse(path, storeDir);
      return true;
    } catch (e) {
      if (e instanceof StorePathError) return false;
      throw e;
    }
  }

  get baseName(): string {
    return `${this.hashPart}-${this.name}`;
  }

  toPath(storeDir = DEFAULT_STORE_DIR): string {
    return `${normalizeStoreDir(storeDir)}/${this.baseName}`;
  }

  toString(): string {
    return this.baseName;
  }
}
