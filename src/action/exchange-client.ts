/**
 * The main step's talk with the Sluice server: the workflow's OIDC ID token for a short-lived cache
 * token (`POST /_api/v1/token`), or, when there is no ID token, whether anonymous reads are allowed.
 */
import * as core from '@actions/core';
import {
  anonymousReadKeys,
  HEALTH_PATH,
  parseTokenExchangeResponse,
  ServerAnswerError,
  TOKEN_EXCHANGE_PATH,
  type ExchangedToken,
} from '../contracts/server-api.js';

/** A failure to reach or use the server, as opposed to the server refusing this job. */
export class ServerUnavailableError extends Error {}
export class ExchangeRefusedError extends Error {}

const EXCHANGE_TIMEOUT_MS = 20_000;

export async function getIdToken(audience: string): Promise<string> {
  const token = await core.getIDToken(audience);
  core.setSecret(token);
  return token;
}

export async function exchangeToken(server: URL, idToken: string): Promise<ExchangedToken> {
  const url = new URL(TOKEN_EXCHANGE_PATH.slice(1), server);
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
  let grant: ExchangedToken;
  try {
    grant = parseTokenExchangeResponse(body);
  } catch (error) {
    if (error instanceof ServerAnswerError) throw new ServerUnavailableError(error.message);
    throw error;
  }
  core.setSecret(grant.token);
  return grant;
}

/**
 * Without an ID token the proxy can still read when the server serves public slices to anyone.
 * The server says so, with its signing keys, in its health document (`public_reads: true`).
 */
export async function probeAnonymousReads(server: URL): Promise<{ publicKeys: string[] } | undefined> {
  try {
    const health = await fetch(new URL(HEALTH_PATH.slice(1), server), {
      signal: AbortSignal.timeout(10_000),
    });
    if (!health.ok) return undefined;
    const keys = anonymousReadKeys(await health.text());
    return keys ? { publicKeys: keys } : undefined;
  } catch {
    return undefined;
  }
}

export function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
