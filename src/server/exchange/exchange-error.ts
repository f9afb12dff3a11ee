/**
 * Why a token exchange or a cache token verification failed, free of HTTP: the HTTP layer maps the
 * kind to a status (src/server/http/exchange-status.ts). Messages name the problem, never the token.
 */

/** `unauthorized`: the token is unusable; `forbidden`: no rule grants anything; `unavailable`: cannot verify now. */
export type ExchangeErrorKind = 'unauthorized' | 'forbidden' | 'unavailable';

export class ExchangeError extends Error {
  constructor(
    readonly kind: ExchangeErrorKind,
    message: string,
    /** A short machine-readable reason, for metrics labels. */
    readonly reason: string,
  ) {
    super(message);
  }
}
