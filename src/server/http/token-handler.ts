/**
 * `POST /_api/v1/token`: `Authorization: Bearer <CI OIDC ID token>` → the cache token and what it
 * grants. Errors are thrown as HttpError (the exchange's mapped by exchange-status.ts) for the router to answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import type { TokenExchangeResponse } from '../../contracts/server-api.js';
import type { Exchange } from '../exchange/index.js';
import { bearerCredential } from './auth.js';
import { asHttp } from './exchange-status.js';

export interface TokenHandlerOptions {
  exchange: Exchange;
  /** The narinfo signing keys, `name:base64`, for the client's `trusted-public-keys`. */
  publicKeys: string[];
  /** The cache's base URL as clients should use it. */
  cacheUrl: string;
}

/** The token of an `Authorization: Bearer …` header, or a 401 saying what is missing. */
function bearerToken(req: IncomingMessage): string {
  const token = bearerCredential(req.headers.authorization);
  if (!token) {
    throw new HttpError(401, 'missing Authorization: Bearer <CI OIDC ID token>', 'missing_token', {
      'www-authenticate': 'Bearer',
    });
  }
  return token;
}

export function createTokenHandler(
  options: TokenHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    req.resume(); // the request body, if any, carries nothing
    const idToken = bearerToken(req);
    const { token, expiresAt, grant } = await asHttp(() => options.exchange.exchange(idToken));
    const body: TokenExchangeResponse = {
      token,
      expires_at: expiresAt.toISOString(),
      read: grant.read,
      write: grant.write,
      public_keys: options.publicKeys,
      cache_url: options.cacheUrl,
    };
    const text = JSON.stringify(body);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };
}
