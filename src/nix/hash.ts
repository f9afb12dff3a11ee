/** Nix hashes and their text forms: `algo:nix32`, `algo:base16`, `algo:base64` and SRI `algo-base64`. */
import { createHash } from 'node:crypto';
import { decodeNix32, encodeNix32, isNix32, Nix32Error, nix32Length } from './nix32.js';

export type HashAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';

const DIGEST_BYTES: Record<HashAlgorithm, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export class HashError extends Error {}

export class Hash {
  constructor(
    readonly algorithm: HashAlgorithm,
    readonly digest: Buffer,
  ) {
    if (digest.length !== DIGEST_BYTES[algorithm]) {
      throw new HashError(
        `${algorithm} digest must be ${DIGEST_BYTES[algorithm]} bytes, got ${digest.length}`,
      );
    }
  }

  /**
   * Parses `algo:<nix32|base16|base64>` or SRI `algo-<base64>`. With `expected`, a bare digest
   * without the algorithm prefix is accepted too.
   */
  static parse(text: string, expected?: HashAlgorithm): Hash {
    const sri = /^(md5|sha1|sha256|sha512)-([A-Za-z0-9+/]+={0,2})$/.exec(text);
    if (sri) {
      if (expected !== undefined && sri[1] !== expected)
        throw new HashError(`expected a ${expected} hash, got '${text}'`);
      return Hash.fromDigestText(sri[1] as HashAlgorithm, sri[2]!, 'base64', text);
    }
    const colon = text.indexOf(':');
    let algorithm: string | undefined;
    let digest: string;
    if (colon === -1) {
      algorithm = expected;
      digest = text;
    } else {
      algorithm = text.slice(0, colon);
      digest = text.slice(colon + 1);
    }
    if (algorithm === undefined) throw new HashError(`hash '${text}' does not name its algorithm`);
    if (!(algorithm in DIGEST_BYTES))
      throw new HashError(`unknown hash algorithm '${algorithm}' in '${text}'`);
    if (expected !== undefined && algorithm !== expected) {
      throw new HashError(`expected a ${expected} hash, got '${text}'`);
    }
    return Hash.fromDigestText(algorithm as HashAlgorithm, digest, undefined, text);
  }

  private static fromDigestText(
    algorithm: HashAlgorithm,
    digest: string,
    encoding: 'base64' | undefined,
    original: string,
  ): Hash {
    const bytes = DIGEST_BYTES[algorithm];
    if (encoding === undefined) {
      if (digest.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(digest)) {
        return new Hash(algorithm, Buffer.from(digest, 'hex'));
      }
      if (digest.length === nix32Length(bytes) && isNix32(digest)) {
        try {
          return new Hash(algorithm, decodeNix32(digest, bytes));
        } catch (e) {
          if (e instanceof Nix32Error)
            throw new HashError(`'${original}' is not a valid ${algorithm} hash: ${e.message}`);
          throw e;
        }
      }
    }
    if (digest.length === Math.ceil(bytes / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(digest)) {
      const decoded = Buffer.from(digest, 'base64');
      // Node ignores stray bits in the last character: insist on the one canonical spelling.
      if (decoded.length === bytes && decoded.toString('base64') === digest)
        return new Hash(algorithm, decoded);
    }
    throw new HashError(`'${original}' is not a valid ${algorithm} hash`);
  }

  static of(algorithm: HashAlgorithm, data: Buffer | string): Hash {
    return new Hash(algorithm, createHash(algorithm).update(data).digest());
  }

  get nix32(): string {
    return encodeNix32(this.digest);
  }

  get base16(): string {
    return this.digest.toString('hex');
  }

  get base64(): string {
    return this.digest.toString('base64');
  }

  /** `sha256:<nix32>`, the form narinfo files use. */
  toString(): string {
    return `${this.algorithm}:${this.nix32}`;
  }

  toBase16String(): string {
    return `${this.algorithm}:${this.base16}`;
  }

  toSRI(): string {
    return `${this.algorithm}-${this.base64}`;
  }

  equals(other: Hash): boolean {
    return this.algorithm === other.algorithm && this.digest.equals(other.digest);
  }
}
