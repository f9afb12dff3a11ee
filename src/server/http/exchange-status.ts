/** The token exchange's errors as HTTP answers: the one place their statuses are chosen. */
import { HttpError } from '../../contracts/http-error.js';
import { ExchangeError, type ExchangeErrorKind } from '../exchange/exchange-error.js';

const STATUS: Record<ExchangeErrorKind, number> = { unauthorized: 401, forbidden: 403, unavailable: 503 };

/** An ExchangeError as the HttpError the router answers with; any other error unchanged. */
export function exchangeErrorToHttp(error: unknown): unknown {
  if (!(error instanceof ExchangeError)) return error;
  const headers: Record<string, string> =
    error.kind === 'unauthorized' ? { 'www-authenticate': 'Bearer' } : {};
  return new HttpError(STATUS[error.kind], error.message, error.reason, headers);
}

/** Runs `action`, turning an ExchangeError it throws into its HttpError. */
export async function asHttp<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw exchangeErrorToHttp(error);
  }
}
