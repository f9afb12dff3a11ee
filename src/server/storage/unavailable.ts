/**
 * A storage backend (PostgreSQL, the object store) that cannot be reached or is restarting: the
 * request gets 503 with Retry-After, which Nix and the Action's proxy retry, never a 500.
 */
import { HttpError } from '../../contracts/http-error.js';

/** Seconds a client should wait before retrying: a restarting database is back within seconds. */
export const RETRY_AFTER_SECONDS = 2;

export class StorageUnavailableError extends HttpError {
  constructor(what: string, cause: unknown) {
    super(503, `${what} is unavailable: ${describeCause(cause)}`, 'storage_unavailable', {
      'retry-after': String(RETRY_AFTER_SECONDS),
    });
  }
}

/** One line naming the cause, without stack or credentials (messages from the drivers carry neither). */
export function describeCause(cause: unknown): string {
  // Duck-typed, not `instanceof Error`: errors from Node's sockets may come from another realm.
  if (typeof cause !== 'object' || cause === null) return String(cause);
  const { code, errors, message, name } = cause as {
    code?: string;
    errors?: { message?: string }[];
    message?: string;
    name?: string;
  };
  // Node's AggregateError (a connect to both ::1 and 127.0.0.1) has an empty message.
  const text = message || (Array.isArray(errors) ? (errors[0]?.message ?? '') : '') || name || String(cause);
  // The AWS SDK wraps socket errors: its prefix says nothing an operator needs.
  const line = (text.split('\n', 1)[0] ?? '').replace(/^AWS SDK error wrapper for (Error: )?/, '');
  return code && !line.includes(code) ? `${line} (${code})` : line;
}
