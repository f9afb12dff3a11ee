/**
 * A storage backend (PostgreSQL, the object store) that cannot be reached or is restarting: the
 * request gets 503 with Retry-After, which Nix and the Action's proxy retry, never a 500.
 */
import { HttpError } from '../../contracts/http-error.js';

/** Seconds a client should wait before retrying: a restarting database is back within seconds. */
export const RETRY_AFTER_SECONDS = 2;

export class StorageUnavailableError extends HttpError {
  /**
   * The cause in full, for the server's log only: a driver's message names the host and port it
   * tried (`connect ECONNREFUSED 10.0.0.5:5432`), which is no business of whoever sent the request.
   */
  readonly detail: string;

  constructor(what: string, cause: unknown) {
    const code = publicCode(cause);
    super(503, `${what} is unavailable${code ? ` (${code})` : ''}: retry shortly`, 'storage_unavailable', {
      'retry-after': String(RETRY_AFTER_SECONDS),
    });
    this.detail = describeCause(cause);
  }
}

/** Errors of a disk with no room left for the write: no space, over quota, over the file size limit. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

export function isStorageFull(error: unknown): boolean {
  return FULL_CODES.has((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/**
 * A write the disk had no room for: 507, which the Action's proxy does not retry (the room comes
 * back only when the collector or an operator frees some). Never a 400: the upload was fine.
 */
export class StorageFullError extends HttpError {
  /** The cause in full, for the server's log only (it names the path). */
  readonly detail: string;

  constructor(what: string, cause: unknown) {
    super(507, `${what} is full (${publicCode(cause)}): nothing was stored`, 'storage_full');
    this.detail = describeCause(cause);
  }
}

/**
 * The cause's error code (ECONNREFUSED, PostgreSQL's 57P01) or class name: nothing else of its
 * message. The AWS SDK wraps socket errors in one whose message alone names the errno.
 */
function publicCode(cause: unknown): string | undefined {
  if (typeof cause !== 'object' || cause === null) return undefined;
  const { code, errors, message, name } = cause as {
    code?: unknown;
    errors?: { code?: unknown }[];
    message?: unknown;
    name?: unknown;
  };
  const codes = [code, Array.isArray(errors) ? errors[0]?.code : undefined];
  if (typeof message === 'string') codes.push(/\b(E[A-Z]{3,20})\b/.exec(message)?.[1]);
  const found = codes.find(
    (candidate) => typeof candidate === 'string' && /^[A-Z0-9_]{2,40}$/.test(candidate),
  );
  if (typeof found === 'string') return found;
  if (typeof name === 'string' && /^[A-Za-z]{1,40}Error$/.test(name) && name !== 'Error') return name;
  return undefined;
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
