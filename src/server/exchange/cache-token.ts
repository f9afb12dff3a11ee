/**
 * Cache tokens: short JWTs this server signs (EdDSA, with the server token key) and only this
 * server verifies. They carry what the policy granted, so the cache protocol needs no policy lookup.
 */
import { createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { CiIdentity } from './identity.js';
import { joseErrorToExchange, unauthorized } from './jwt-errors.js';
import { isSliceName, isSlicePattern } from '../slices/slice-names.js';

export const CACHE_TOKEN_ISSUER = 'sluice';
export const CACHE_TOKEN_AUDIENCE = 'sluice-cache';
const CACHE_TOKEN = 'cache token';
/**
 * Verified tokens remembered, so a job's thousands of narinfo GETs do not each pay for an EdDSA
 * verification. Bounded (a job holds one token at a time; old entries go first) and never past
 * the token's own expiry.
 */
const VERIFIED_CACHE_SIZE = 1024;

export interface ReadTokenIdentity {
  /** What the read token was made for (`laptop`, `deploy-eu-1`). */
  name: string;
}

/**
 * A read grant that came from a template (`${repository_owner}/*`) covers only slices that a job of
 * this issuer (and these ids, when its tokens carry them) bound by writing them: names are for
 * display, ids decide (an owner name can be deleted and registered again, two issuers can both
 * have an `acme`).
 */
export interface OwnerRequirement {
  issuer: string;
  repositoryId?: string;
  repositoryOwnerId?: string;
}

export interface CacheGrant {
  /** `ci`: from the OIDC exchange; `read`: made by `sluice token create`, never writes. */
  kind: 'ci' | 'read';
  /** Slice names and `*` patterns the token may read. */
  read: string[];
  /** Per entry of `read`: the binding a slice needs to be covered by it; null: the name alone. */
  readOwners?: (OwnerRequirement | null)[];
  /** The one slice the token may write, or null. */
  write: string | null;
  /** The write slice belongs to the first repository that writes it (see PolicyDecision.bindWrite). */
  bindWrite?: boolean;
  identity: CiIdentity | ReadTokenIdentity;
  /** Read tokens only: the token's `jti` and `iat` (seconds), for revocation and the maximum lifetime. */
  issued?: { id: string; at: number };
  /** The token's `exp` (seconds), once verified: what is derived from the token lives no longer. */
  expiresAt?: number;
}

export interface CacheTokens {
  issue(grant: CacheGrant, ttlSeconds: number): Promise<{ token: string; expiresAt: Date; id: string }>;
  /** Throws ExchangeError (unauthorized) naming why the token is unusable. */
  verify(token: string): Promise<CacheGrant>;
}

function isOwnerRequirement(value: unknown): value is OwnerRequirement {
  if (!isStringRecord(value) || typeof value.issuer !== 'string') return false;
  return Object.keys(value).every((key) => ['issuer', 'repositoryId', 'repositoryOwnerId'].includes(key));
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === 'string')
  );
}

/** Re-checks a signed payload's shape: defence in depth should the key ever sign something odd. */
function grantFromPayload(payload: JWTPayload): CacheGrant {
  const {
    kind,
    read,
    write,
    identity,
    bind_write: bindWrite,
    read_owners: readOwners,
    jti,
    iat,
    exp,
  } = payload;
  const validKind = kind === 'ci' || kind === 'read';
  const validRead =
    Array.isArray(read) && read.every((item) => typeof item === 'string' && isSlicePattern(item));
  const validWrite = write === null || (typeof write === 'string' && isSliceName(write) && kind === 'ci');
  const validBind = bindWrite === undefined || typeof bindWrite === 'boolean';
  // Tokens issued before read grants carried owners have none: they read by name until they expire.
  const validOwners =
    readOwners === undefined ||
    (Array.isArray(readOwners) &&
      Array.isArray(read) &&
      readOwners.length === read.length &&
      readOwners.every((owner) => owner === null || isOwnerRequirement(owner)));
  const validIssued = kind !== 'read' || (typeof jti === 'string' && typeof iat === 'number');
  if (
    !validKind ||
    !validRead ||
    !validWrite ||
    !validBind ||
    !validOwners ||
    !validIssued ||
    !isStringRecord(identity)
  ) {
    throw unauthorized(CACHE_TOKEN, 'malformed claims', 'malformed_token');
  }
  return {
    kind,
    read: read as string[],
    write: write as string | null,
    bindWrite: bindWrite === true,
    ...(readOwners === undefined ? {} : { readOwners: readOwners as (OwnerRequirement | null)[] }),
    identity: identity as CiIdentity | ReadTokenIdentity,
    ...(kind === 'read' ? { issued: { id: jti as string, at: iat as number } } : {}),
    ...(typeof exp === 'number' ? { expiresAt: exp } : {}),
  };
}

function subjectOf(grant: CacheGrant): string {
  if ('name' in grant.identity && grant.kind === 'read') return `read:${grant.identity.name}`;
  const identity = grant.identity as CiIdentity;
  return `${identity.issuer}:${identity.repository ?? identity.sub ?? 'unknown'}`;
}

export function createCacheTokens(tokenKey: KeyObject, now: () => number = Date.now): CacheTokens {
  if (tokenKey.type !== 'private' || tokenKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('the token key must be an ed25519 private key');
  }
  const publicKey = createPublicKey(tokenKey);
  const verified = new Map<string, { grant: CacheGrant; expiresAtMs: number }>();
  const remember = (token: string, grant: CacheGrant, expiresAtMs: number) => {
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    verified.set(token, { grant, expiresAtMs });
  };
  return {
    async issue(grant, ttlSeconds) {
      if (grant.kind === 'read' && grant.write !== null) throw new TypeError('a read token cannot write');
      const issuedAt = Math.floor(now() / 1000);
      const expiresAt = issuedAt + ttlSeconds;
      const id = randomUUID();
      const token = await new SignJWT({
        kind: grant.kind,
        read: grant.read,
        write: grant.write,
        bind_write: grant.bindWrite === true,
        ...(grant.readOwners ? { read_owners: grant.readOwners } : {}),
        identity: grant.identity,
      })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
        .setIssuer(CACHE_TOKEN_ISSUER)
        .setAudience(CACHE_TOKEN_AUDIENCE)
        .setSubject(subjectOf(grant))
        .setJti(id)
        .setIssuedAt(issuedAt)
        .setExpirationTime(expiresAt)
        .sign(tokenKey);
      return { token, expiresAt: new Date(expiresAt * 1000), id };
    },

    async verify(token) {
      const known = verified.get(token);
      // jose refuses a token once now >= exp: so does the cache, and the full check then names why.
      if (known && now() < known.expiresAtMs) return known.grant;
      if (known) verified.delete(token);
      try {
        const { payload } = await jwtVerify(token, publicKey, {
          issuer: CACHE_TOKEN_ISSUER,
          audience: CACHE_TOKEN_AUDIENCE,
          algorithms: ['EdDSA'],
          requiredClaims: ['exp', 'jti'],
          currentDate: new Date(now()),
        });
        const grant = grantFromPayload(payload);
        remember(token, grant, (payload.exp as number) * 1000);
        return grant;
      } catch (error) {
        const refusal = joseErrorToExchange(CACHE_TOKEN, error);
        // Our own key is local: anything jose cannot attribute to a claim is a token we did not sign.
        if (refusal.kind === 'unavailable')
          throw unauthorized(CACHE_TOKEN, 'not signed by this server', 'forged_token');
        throw refusal;
      }
    },
  };
}
