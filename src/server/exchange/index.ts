/**
 * The token exchange: CI OIDC ID token → policy → cache token; cache token verification; read-only
 * tokens for humans and machines. The server's HTTP layer codes against `Exchange`.
 */
import type { KeyObject } from 'node:crypto';
import type { Config } from '../config/config-schema.js';
import { createCacheTokens, type CacheGrant } from './cache-token.js';
import { identityFromClaims } from './identity.js';
import { createOidcVerifier, type OidcOptions } from './oidc.js';
import { createPolicy, defaultSlices } from './policy.js';
import { isSlicePattern, normalizeSliceName } from '../slices/slice-names.js';
import { createTokenState } from './token-state.js';
import { unauthorized } from './jwt-errors.js';
import type { MetadataStore } from '../storage/metadata-store.js';

export type { CacheGrant, OwnerRequirement, ReadTokenIdentity } from './cache-token.js';
export type { CiIdentity } from './identity.js';
export { sliceMatches, isSliceName, isSlicePattern, normalizeSliceName } from '../slices/slice-names.js';
export { loadOrCreateTokenKey, parseTokenKey, tokenKeyPath, TOKEN_KEY_FILE } from './token-key.js';
export { DEFAULT_WRITE_EVENTS, defaultSlices } from './policy.js';
export { ExchangeError, type ExchangeErrorKind } from './exchange-error.js';

export interface Exchange {
  /** Verifies a CI OIDC ID token, applies the policy, issues a cache token. Throws ExchangeError: unauthorized (unusable token, with the reason), forbidden (no rule grants anything, naming the claims that failed), unavailable (the issuer's keys cannot be fetched). */
  exchange(idToken: string): Promise<{ token: string; expiresAt: Date; grant: CacheGrant }>;
  /** Verifies a cache token. Throws ExchangeError (unauthorized) with the reason. */
  verifyCacheToken(token: string): Promise<CacheGrant>;
  /**
   * What `verifyCacheToken` checks beyond the signature, for a grant carried by something else the
   * server signed (a NAR link): not expired, and a read token not revoked. Throws as it does.
   */
  checkGrant(grant: CacheGrant): Promise<void>;
  /** A token that can read `read` (slice names or patterns) and never write. */
  createReadToken(opts: {
    read: string[];
    ttlSeconds: number;
    name: string;
  }): Promise<{ token: string; expiresAt: Date; id: string }>;
  /** Public slices (names or patterns): readable without a token. */
  publicSlices(): string[];
}

export interface ExchangeOptions extends OidcOptions {
  /**
   * Where exchanged ID tokens and read tokens are remembered (the server's and the CLI's store).
   * Without one (unit tests of the token logic only) an ID token may be exchanged again and read
   * tokens are neither recorded nor checked for revocation.
   */
  store?: MetadataStore;
}

const READ_TOKEN_NAME = /^[A-Za-z0-9._@-]{1,100}$/;

export function createExchange(config: Config, tokenKey: KeyObject, options: ExchangeOptions = {}): Exchange {
  const verifier = createOidcVerifier(config.issuers, options);
  const policy = createPolicy(config.slices ?? defaultSlices(config.issuers));
  const now = options.now ?? Date.now;
  const cacheTokens = createCacheTokens(tokenKey, now);
  const maxReadTokenTtlSeconds = config.maxReadTokenTtlSeconds;
  const state = options.store ? createTokenState(options.store, { now, maxReadTokenTtlSeconds }) : undefined;

  return {
    async exchange(idToken) {
      const { issuer, claims } = await verifier.verify(idToken);
      const decision = policy.evaluate(issuer.name, claims);
      // After the policy: a token refused with 403 is not used up, the same answer comes again.
      await state?.useIdTokenOnce(issuer.name, claims, idToken);
      const grant: CacheGrant = {
        kind: 'ci',
        ...decision,
        identity: identityFromClaims(issuer.name, claims),
      };
      return { ...(await cacheTokens.issue(grant, config.tokenTtlSeconds)), grant };
    },

    async verifyCacheToken(token) {
      const grant = await cacheTokens.verify(token);
      await state?.checkReadToken(grant);
      return grant;
    },

    async checkGrant(grant) {
      if (grant.expiresAt === undefined || now() >= grant.expiresAt * 1000)
        throw unauthorized('cache token', 'expired', 'token_expired');
      await state?.checkReadToken(grant);
    },

    async createReadToken({ read, ttlSeconds, name }) {
      if (read.length === 0) throw new TypeError('a read token needs at least one slice or pattern');
      const invalid = read.find((pattern) => !isSlicePattern(pattern));
      if (invalid !== undefined) throw new TypeError(`'${invalid}' is not a slice name or pattern`);
      if (!READ_TOKEN_NAME.test(name))
        throw new TypeError(`token name '${name}' must be 1-100 letters, digits, . _ @ -`);
      if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0)
        throw new TypeError('the lifetime must be a positive number of seconds');
      if (ttlSeconds > maxReadTokenTtlSeconds)
        throw new TypeError(
          `a lifetime of ${ttlSeconds} s is longer than max_read_token_ttl (${maxReadTokenTtlSeconds} s)`,
        );
      const grant: CacheGrant = {
        kind: 'read',
        read: read.map(normalizeSliceName),
        write: null,
        identity: { name },
      };
      const issued = await cacheTokens.issue(grant, ttlSeconds);
      await options.store?.addReadToken({
        id: issued.id,
        name,
        read: grant.read,
        createdAt: new Date(issued.expiresAt.getTime() - ttlSeconds * 1000), // its iat
        expiresAt: issued.expiresAt,
        lastUsedAt: null,
        revokedAt: null,
      });
      return issued;
    },

    publicSlices: () => policy.publicSlices(),
  };
}
