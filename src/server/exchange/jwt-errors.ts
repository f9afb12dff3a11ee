/**
 * Turns jose's verification errors into ExchangeErrors whose message says why a token is unusable, without
 * echoing the token. Shared by the OIDC ID token and the cache token verification.
 */
import { errors } from 'jose';
import { ExchangeError } from './exchange-error.js';

export function unauthorized(what: string, problem: string, reason: string): ExchangeError {
  return new ExchangeError('unauthorized', `${what}: ${problem}`, reason);
}

export function joseErrorToExchange(what: string, error: unknown): ExchangeError {
  if (error instanceof ExchangeError) return error;
  if (error instanceof errors.JWTExpired) return unauthorized(what, 'expired', 'token_expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'aud':
        return unauthorized(what, 'wrong audience', 'wrong_audience');
      case 'iss':
        return unauthorized(what, 'wrong issuer', 'wrong_issuer');
      case 'nbf':
        return unauthorized(what, 'not valid yet (nbf is in the future)', 'not_yet_valid');
      case 'iat':
        return unauthorized(what, 'issued in the future (iat)', 'not_yet_valid');
      default:
        return unauthorized(what, `claim '${error.claim}' is invalid`, 'invalid_claims');
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return unauthorized(what, 'signing algorithm not allowed', 'alg_not_allowed');
  }
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return unauthorized(what, 'bad signature', 'bad_signature');
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return unauthorized(what, 'signed with a key the issuer does not publish', 'unknown_key');
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return unauthorized(what, 'malformed token', 'malformed_token');
  }
  // Not the token's fault: the keys could not be fetched (network, discovery, JWKS answer).
  const detail = error instanceof Error ? `: ${error.message}` : '';
  return new ExchangeError(
    'unavailable',
    `${what}: cannot verify now, the issuer's keys are unavailable${detail}`,
    'issuer_unavailable',
  );
}
