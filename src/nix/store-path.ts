/** Store paths: `<storeDir>/<32-char nix32 hash>-<name>`. */
import { isNix32 } from './nix32.js';

export const DEFAULT_STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
/** Nix limits a store path's base name to 211 characters: 32 for the hash, one dash, 178 for the name. */
export const MAX_NAME_LENGTH = 211 - HASH_PART_LENGTH - 1;

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

function validateName(name: string, baseName: string): void {
  if (name.length === 0) throw new StorePathError(`store path '${baseName}' has an empty name`);
  if (name.length > MAX_NAME_LENGTH) {
    throw new StorePathError(`store path name in '${baseName}' is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (name.startsWith('.')) throw new StorePathError(`store path name in '${baseName}' starts with '.'`);
  if (!NAME_PATTERN.test(name)) {
    throw new StorePathError(`store path name in '${baseName}' has characters outside [A-Za-z0-9+-._?=]`);
  }
}

export class StorePath {
  private constructor(
    readonly hashPart: string,
    readonly name: string,
  ) {}

  /** Parses a base name such as `l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b`. */
  static fromBaseName(baseName: string): StorePath {
    const dash = baseName.indexOf('-');
    if (dash !== HASH_PART_LENGTH) {
      throw new StorePathError(`'${baseName}' is not a store path base name (<32-char hash>-<name>)`);
    }
    const hashPart = validateHashPart(baseName.slice(0, dash));
    const name = baseName.slice(dash + 1);
    validateName(name, baseName);
    return new StorePath(hashPart, name);
  }

  /** Parses a full path inside `storeDir`. */
  static parse(path: string, storeDir = DEFAULT_STORE_DIR): StorePath {
    const prefix = storeDir.endsWith('/') ? storeDir : `${storeDir}/`;
    if (!path.startsWith(prefix)) throw new StorePathError(`path '${path}' is not in the store '${storeDir}'`);
    const baseName = path.slice(prefix.length);
    if (baseName.includes('/')) throw new StorePathError(`path '${path}' is inside a store path, not a store path`);
    return StorePath.fromBaseName(baseName);
  }

  get baseName(): string {
    return `${this.hashPart}-${this.name}`;
  }

  toPath(storeDir = DEFAULT_STORE_DIR): string {
    return `${storeDir.replace(/\/$/, '')}/${this.baseName}`;
  }

  toString(): string {
    return this.baseName;
  }
}
