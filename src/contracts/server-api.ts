/**
 * The server's own API as its clients (the Action's main step, the daemon, the benchmark) see it:
 * the routes, the token exchange's answer and its one parser, the health document, the answer to
 * Sluice's NAR upload route. The server builds these types; every client parses with these functions.
 */

/** `POST` with `Authorization: Bearer <CI OIDC ID token>`. */
export const TOKEN_EXCHANGE_PATH = '/_api/v1/token';
export const HEALTH_PATH = '/_api/v1/health';
/** `PUT <prefix><narhash>.nar[.ext]`: a NAR file named by the NarHash of the NAR inside it. */
export const NAR_UPLOAD_PREFIX = '/_api/v1/nar/';
/**
 * The NAR upload's query for an uploader whose narinfos state no FileHash: the server then skips
 * hashing the file (a SHA-256 pass over every byte) and its answer has no `file_hash`. Without it,
 * as older proxies upload, the answer has one.
 */
export const NAR_UPLOAD_WITHOUT_FILE_HASH = 'file_hash=omit';

/**
 * Set by nginx in front of a server with `storage.blobs.x_accel_redirect` (docs/operations.md):
 * `X-Sluice-Accel: on` says that whoever sent the request sends files named by `X-Accel-Redirect`.
 * Requests without it (straight to the server) get the bytes from the server itself.
 */
export const ACCEL_REQUEST_HEADER = 'x-sluice-accel';

/** The `aud` CI ID tokens are requested with, unless the Action's `audience` input says otherwise. */
export const DEFAULT_AUDIENCE = 'sluice';

/** The token exchange's 200 answer, as JSON on the wire. */
export interface TokenExchangeResponse {
  token: string;
  /** ISO 8601, the one form an expiry takes between the parts. */
  expires_at: string;
  /** Slice names and `*` patterns the token reads. */
  read: string[];
  write: string | null;
  /** `name:base64` keys for `trusted-public-keys`. */
  public_keys: string[];
  cache_url: string;
}

/** The same, as the clients use it. */
export interface ExchangedToken {
  token: string;
  /** ISO 8601. */
  expiresAt: string;
  read: string[];
  write: string | null;
  publicKeys: string[];
  cacheUrl: string;
}

/** An answer that is not the contract's: the server is not (this version of) Sluice. */
export class ServerAnswerError extends Error {}

export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function jsonObject(text: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ServerAnswerError(`${what} answered something that is not JSON`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ServerAnswerError(`${what} did not answer a JSON object`);
  return json as Record<string, unknown>;
}

/** A slice name or `*` pattern as the server makes them (its own check is stricter: no `.`/`..` segments). */
const SLICE_NAME_OR_PATTERN = /^[A-Za-z0-9._*-]+(\/[A-Za-z0-9._*-]+)*$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** The one parser of the token exchange's answer. */
export function parseTokenExchangeResponse(text: string): ExchangedToken {
  const json = jsonObject(text, 'the token exchange');
  const { token, expires_at, read, write, public_keys, cache_url } = json;
  if (
    typeof token !== 'string' ||
    token === '' ||
    typeof expires_at !== 'string' ||
    Number.isNaN(Date.parse(expires_at)) ||
    !isStringArray(read) ||
    !(write === null || typeof write === 'string') ||
    !isStringArray(public_keys) ||
    typeof cache_url !== 'string'
  ) {
    throw new ServerAnswerError('the token exchange answered JSON without the expected fields');
  }
  // These reach the step's log, where a line starting with `::` is a command to the runner: only
  // what the server itself can send (slice names or patterns, toISOString) is taken.
  for (const slice of write === null ? read : [...read, write]) {
    if (slice.length > 200 || !SLICE_NAME_OR_PATTERN.test(slice))
      throw new ServerAnswerError(
        `the token exchange answered a slice that is not one: ${JSON.stringify(slice.slice(0, 80))}`,
      );
  }
  if (!ISO_TIME.test(expires_at))
    throw new ServerAnswerError(
      `the token exchange answered an expiry that is not one (ISO 8601): ${JSON.stringify(expires_at.slice(0, 80))}`,
    );
  return { token, expiresAt: expires_at, read, write, publicKeys: public_keys, cacheUrl: cache_url };
}

/** `GET /_api/v1/health`. */
export interface ServerHealth {
  status: 'ok';
  public_key: string;
  public_keys: string[];
  /** Whether some slice is readable without a token (a fork's pull request can still read). */
  public_reads: boolean;
}

/** Whether anonymous reads are allowed, and with which keys; undefined when not. */
export function anonymousReadKeys(text: string): string[] | undefined {
  let json: Record<string, unknown>;
  try {
    json = jsonObject(text, 'the health route');
  } catch {
    return undefined;
  }
  if (json.public_reads !== true) return undefined;
  const keys = isStringArray(json.public_keys)
    ? json.public_keys
    : typeof json.public_key === 'string'
      ? [json.public_key]
      : [];
  return keys.length > 0 ? keys : undefined;
}

/** The 200/201 answer of `PUT /_api/v1/nar/<narhash>.nar[.ext]`: what the path's narinfo must state. */
export interface NarUploadResponse {
  url: string;
  compression: string;
  /** `sha256:<nix32>`; absent when the upload asked for none (NAR_UPLOAD_WITHOUT_FILE_HASH). */
  file_hash?: string;
  file_size: number;
  nar_hash: string;
  nar_size: number;
}
