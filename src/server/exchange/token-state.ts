/**
 * What signed tokens cannot say about themselves, kept in the metadata store so every replica
 * agrees: which CI ID tokens were exchanged already (each may be exchanged once), and which read
 * tokens exist, were revoked or outlived `max_read_token_ttl`.
 */
import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { CacheGrant } from './cache-token.js';
import { unauthorized } from './jwt-errors.js';
import { CLOCK_LEEWAY_SECONDS } from './oidc.js';

/**
 * How long a replica trusts a read token's last check of the store. The store is asked at most once
 * a second per token per replica (a job's thousands of lookups do not each cost a query); a
 * revocation reaches every replica within that second.
 */
export const READ_TOKEN_RECHECK_MS = 1000;
const REMEMBERED_READ_TOKENS = 1024;

export interface TokenState {
  /** Throws 401 when this ID token was exchanged before (on any replica). */
  useIdTokenOnce(issuerName: string, claims: JWTPayload, idToken: string): Promise<void>;
  /** Throws 401 when the read token was revoked, is unknown to the store or is older than the maximum. */
  checkReadToken(grant: CacheGrant): Promise<void>;
}

/** The issuer's `jti` when it sets one (a re-encoded token keeps it), else a hash of the token. */
export function idTokenKey(issuerName: string, claims: JWTPayload, idToken: string): string {
  if (typeof claims.jti === 'string' && claims.jti !== '') return `${issuerName}:jti:${claims.jti}`;
  return `${issuerName}:sha256:${createHash('sha256').update(idToken).digest('hex')}`;
}

export function createTokenState(
  store: MetadataStore,
  options: { now: () => number; maxReadTokenTtlSeconds: number },
): TokenState {
  const { now } = options;
  const checked = new Map<string, { at: number; state: Promise<{ revoked: boolean } | null> }>();

  function storedState(id: string): Promise<{ revoked: boolean } | null> {
    const known = checked.get(id);
    if (known && now() - known.at < READ_TOKEN_RECHECK_MS) return known.state;
    if (checked.size >= REMEMBERED_READ_TOKENS) checked.delete(checked.keys().next().value!);
    const state = store.touchReadToken(id, new Date(now()));
    checked.delete(id);
    checked.set(id, { at: now(), state });
    state.catch(() => checked.delete(id));
    return state;
  }

  return {
    async useIdTokenOnce(issuerName, claims, idToken) {
      // Kept past `exp` by the leeway the verifier grants, or a replay could pass in that window.
      const until = new Date(((claims.exp as number) + CLOCK_LEEWAY_SECONDS) * 1000);
      const first = await store.useIdTokenOnce(
        idTokenKey(issuerName, claims, idToken),
        until,
        new Date(now()),
      );
      if (!first) throw unauthorized('ID token', 'already exchanged once (replay)', 'token_replayed');
    },

    async checkReadToken(grant) {
      if (grant.kind !== 'read') return;
      const issued = grant.issued!;
      if (now() / 1000 > issued.at + options.maxReadTokenTtlSeconds)
        throw unauthorized('cache token', 'read token older than max_read_token_ttl', 'token_expired');
      const state = await storedState(issued.id);
      if (state === null)
        throw unauthorized(
          'cache token',
          'read token unknown to this server (create a new one)',
          'unknown_token',
        );
      if (state.revoked) throw unauthorized('cache token', 'read token revoked', 'token_revoked');
    },
  };
}
