/**
 * The token exchange: CI OIDC ID token → policy → cache token; cache token verification; read-only
 * tokens for humans and machines. The server's HTTP layer codes against `Exchange`.
 */
import type { KeyObject } from 'node:crypto';
import type { Config } from '../config.js';
import { createCacheTokens, type CacheGrant } from './cache-token.js';
import { identityFromClaims } from './identity.js';
import { createOidcVerifier, type OidcOptions } from './oidc.js';
import { createPolicy, defaultSlices } from './policy.js';
import { isSlicePattern, normalizeSliceName } from './slice-names.js';

export type { CacheGrant, OwnerRequirement, ReadTokenIdentity } from './cache-token.js';
export type { CiIdentity } from './identity.js';
export { sliceMatches, isSliceName, isSlicePattern, normalizeSliceName } from './slice-names.js';
export { loadOrCreateTokenKey, tokenKeyPath, TOKEN_KEY_FILE } from './token-key.js';
export { DEFAULT_WRITE_EVENTS, defaultSlices } from './policy.js';
export { createTokenHandler, type TokenHandlerOptions } from './handler.js';

export interface Exchange {
  /** Verifies a CI OIDC ID token, applies the policy, issues a cache token. Throws HttpError 401 (unusable token, with the reason) or 403 (no rule grants anything, naming the claims that failed); 503 when the issuer's keys cannot be fetched. */
  exchange(idToken: string): Promise<{ token: string; expiresAt: Date; grant: CacheGrant }>;
  /** Verifies a cache token. Throws HttpError 401 with the reason. */
  verifyCacheToken(token: string): Promise<CacheGrant>;
  /** A token that can read `read` (slice names or patterns) and never write. */
  createReadToken(opts: {
    read: string[];
    ttlSeconds: number;
    name: string;
  }): Promise<{ token: string; expiresAt: Date }>;
  /** Public slices (names or patterns): readable without a token. */
  publicSlices(): string[];
}

export type ExchangeOptions = OidcOptions;

const READ_TOKEN_NAME = /^[A-Za-z0-9._@-]{1,100}$/;

export function createExchange(config: Config, tokenKey: KeyObject, options: ExchangeOptions = {}): Exchange {
  const verifier = createOidcVerifier(config.issuers, options);
  const policy = createPolicy(config.slices ?? defaultSlices(config.issuers));
  const cacheTokens = createCacheTokens(tokenKey, options.now);

  return {
    async exchange(idToken) {
      const { issuer, claims } = await verifier.verify(idToken);
      const decision = policy.evaluate(issuer.name, claims);
      const grant: CacheGrant = {
        kind: 'ci',
        ...decision,
        identity: identityFromClaims(issuer.name, claims),
      };
      return { ...(await cacheTokens.issue(grant, config.tokenTtlSeconds)), grant };
    },

    verifyCacheToken: (token) => cacheTokens.verify(token),

    async createReadToken({ read, ttlSeconds, name }) {
      if (read.length === 0) throw new TypeError('a read token needs at least one slice or pattern');
      const invalid = read.find((pattern) => !isSlicePattern(pattern));
      if (invalid !== undefined) throw new TypeError(`'${invalid}' is not a slice name or pattern`);
      if (!READ_TOKEN_NAME.test(name))
        throw new TypeError(`token name '${name}' must be 1-100 letters, digits, . _ @ -`);
      if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0)
        throw new TypeError('the lifetime must be a positive number of seconds');
      const grant: CacheGrant = {
        kind: 'read',
        read: read.map(normalizeSliceName),
        write: null,
        identity: { name },
      };
      return cacheTokens.issue(grant, ttlSeconds);
    },

    publicSlices: () => policy.publicSlices(),
  };
}
