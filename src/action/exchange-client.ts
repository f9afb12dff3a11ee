/**
 * The main step's talk with the Sluice server: the workflow's OIDC ID token for a short-lived cache
 * token (`POST /_api/v1/token`), or, when there is no ID token, whether anonymous reads are allowed.
 */
import * as core from '@actions/core';

export interface CacheGrant {
  token: string;
  expiresAt: string;
  read: string[];
  write: string | null;
  publicKeys: string[];
  cacheUrl: string;
}

/** A failure to reach or use the server, as opposed to the server refusing this job. */
export class ServerUnavailableError extends Error {}
export class ExchangeRefusedError extends Error {}

const EXCHANGE_TIMEOUT_MS = 20_000;

export async function getIdToken(audience: string): Promise<string> {
  const token = await core.getIDToken(audience);
  core.setSecret(token);
  return token;
}

export async function exchangeToken(server: URL, idToken: string): Promise<CacheGrant> {
  const url = new URL('_api/v1/token', server);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${idToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ServerUnavailableError(`could not reach ${url.origin}: ${describeFetchError(error)}`);
  }
  const body = await response.text();
  if (response.status >= 500 || response.status === 429) {
    throw new ServerUnavailableError(`${url.href} answered ${response.status}: ${body.trim().slice(0, 300)}`);
  }
  if (!response.ok) {
    throw new ExchangeRefusedError(
      `${url.href} refused the token exchange (${response.status}): ${body.trim().slice(0, 300)}`,
    );
  }
  const grant = parseGrant(body);
  core.setSecret(grant.token);
  return grant;
}

function parseGrant(body: string): CacheGrant {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw new ServerUnavailableError('the token exchange answered something that is not JSON');
  }
  const { token, expires_at, read, write, public_keys, cache_url } = json;
  if (
    typeof token !== 'string' ||
    typeof expires_at !== 'string' ||
    !isStringArray(read) ||
    !(write === null || typeof write === 'string') ||
    !isStringArray(public_keys) ||
    typeof cache_url !== 'string'
  ) {
    throw new ServerUnavailableError('the token exchange answered JSON without the expected fields');
  }
  return { token, expiresAt: expires_at, read, write, publicKeys: public_keys, cacheUrl: cache_url };
}

/**
 * Without an ID token the proxy can still read when the server serves public slices to anyone.
 * The server says so, with its signing keys, in its health document (`public_reads: true`).
 */
export async function probeAnonymousReads(server: URL): Promise<{ publicKeys: string[] } | undefined> {
  try {
    const health = await fetch(new URL('_api/v1/health', server), { signal: AbortSignal.timeout(10_000) });
    if (!health.ok) return undefined;
    const json = (await health.json()) as {
      public_reads?: unknown;
      public_keys?: unknown;
      public_key?: unknown;
    };
    if (json.public_reads !== true) return undefined;
    const keys = isStringArray(json.public_keys)
      ? json.public_keys
      : typeof json.public_key === 'string'
        ? [json.public_key]
        : [];
    return keys.length > 0 ? { publicKeys: keys } : undefined;
  } catch {
    return undefined;
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

export function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
