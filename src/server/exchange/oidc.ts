/**
 * Verifies CI OIDC ID tokens (GitHub Actions' and any other configured issuer's) with jose: the
 * signature against the issuer's published keys, then `iss`, `aud`, `exp`, `nbf` and `iat`.
 */
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import type { IssuerConfig } from '../config/config-schema.js';
import { joseErrorToExchange, unauthorized } from './jwt-errors.js';

/** Asymmetric algorithms only: `none` and HMAC (which a public key could forge) never pass. */
export const ALLOWED_ID_TOKEN_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/** Clock skew tolerated between the issuer and this server. */
export const CLOCK_LEEWAY_SECONDS = 60;

const FETCH_TIMEOUT_MS = 5000;
const ID_TOKEN = 'ID token';

export interface OidcOptions {
  /**
   * How long after fetching an issuer's keys a token with an unknown `kid` may trigger another
   * fetch (jose's `cooldownDuration`). Default 30 s: rotated keys are picked up, and a flood of
   * forged `kid`s cannot hammer the issuer.
   */
  jwksCooldownMs?: number;
  /** The current time in milliseconds (tests move it). */
  now?: () => number;
}

export interface VerifiedIdToken {
  issuer: IssuerConfig;
  claims: JWTPayload;
}

export interface OidcVerifier {
  verify(idToken: string): Promise<VerifiedIdToken>;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

/** Finds the JWKS URL through OIDC discovery; the document must name the same issuer. */
async function discoverJwksUri(issuer: IssuerConfig): Promise<URL> {
  const url = `${issuer.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const response = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`OIDC discovery at ${url} answered ${response.status}`);
  const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (document.issuer !== issuer.issuer) throw new Error(`OIDC discovery at ${url} names another issuer`);
  if (typeof document.jwks_uri !== 'string') throw new Error(`OIDC discovery at ${url} has no jwks_uri`);
  const jwksUri = new URL(document.jwks_uri);
  if (jwksUri.protocol !== 'https:' && !(issuer.allowInsecureHttp && jwksUri.protocol === 'http:')) {
    throw new Error(`OIDC discovery at ${url} points to a non-https jwks_uri`);
  }
  return jwksUri;
}

export function createOidcVerifier(issuers: IssuerConfig[], options: OidcOptions = {}): OidcVerifier {
  const now = options.now ?? Date.now;
  const keySets = new Map<string, Promise<KeySet>>();

  /** One cached key set per issuer; a failed discovery is retried on the next token. */
  function keySetFor(issuer: IssuerConfig): Promise<KeySet> {
    let keySet = keySets.get(issuer.name);
    if (!keySet) {
      keySet = (issuer.jwksUri ? Promise.resolve(new URL(issuer.jwksUri)) : discoverJwksUri(issuer)).then(
        (url) =>
          createRemoteJWKSet(url, {
            timeoutDuration: FETCH_TIMEOUT_MS,
            ...(options.jwksCooldownMs !== undefined ? { cooldownDuration: options.jwksCooldownMs } : {}),
          }),
      );
      keySet.catch(() => keySets.delete(issuer.name));
      keySets.set(issuer.name, keySet);
    }
    return keySet;
  }

  return {
    async verify(idToken) {
      let unverifiedIss: unknown;
      try {
        unverifiedIss = decodeJwt(idToken).iss;
      } catch {
        throw unauthorized(ID_TOKEN, 'malformed token', 'malformed_token');
      }
      const issuer = issuers.find((candidate) => candidate.issuer === unverifiedIss);
      if (!issuer) {
        const shown =
          typeof unverifiedIss === 'string' ? JSON.stringify(unverifiedIss.slice(0, 200)) : 'none';
        throw unauthorized(ID_TOKEN, `unknown issuer ${shown}`, 'unknown_issuer');
      }
      try {
        const currentDate = new Date(now());
        const { payload } = await jwtVerify(idToken, await keySetFor(issuer), {
          issuer: issuer.issuer,
          audience: issuer.audience,
          algorithms: ALLOWED_ID_TOKEN_ALGORITHMS,
          clockTolerance: CLOCK_LEEWAY_SECONDS,
          requiredClaims: ['exp'],
          currentDate,
        });
        // jose checks `iat` only together with maxTokenAge: refuse tokens minted in the future here.
        if (
          typeof payload.iat === 'number' &&
          payload.iat > currentDate.getTime() / 1000 + CLOCK_LEEWAY_SECONDS
        ) {
          throw unauthorized(ID_TOKEN, 'issued in the future (iat)', 'not_yet_valid');
        }
        return { issuer, claims: payload };
      } catch (error) {
        throw joseErrorToExchange(ID_TOKEN, error);
      }
    },
  };
}
