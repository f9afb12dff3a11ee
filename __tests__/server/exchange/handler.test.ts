import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendError } from '../../../src/contracts/http-error.js';
import type { Exchange } from '../../../src/server/exchange/index.js';
import { createTokenHandler } from '../../../src/server/http/token-handler.js';
import { githubClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { exchangeFor } from './setup.js';

describe('POST /_api/v1/token handler on a real HTTP server', () => {
  let issuer: OidcIssuer;
  let exchange: Exchange;
  let server: Server;
  let url: string;
  const publicKeys = ['sluice-test-1:5sXcbUUmZ0uh6iJNOyaXcWZbQwUOcWT8GnRrg0ySwpM='];

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    exchange = exchangeFor(issuer);
    const handler = createTokenHandler({ exchange, publicKeys, cacheUrl: 'https://cache.example.com' });
    server = createServer((req, res) => {
      handler(req, res).catch((error: unknown) => sendError(res, error));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_api/v1/token`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await issuer.close();
  });

  const post = (authorization?: string) =>
    fetch(url, { method: 'POST', headers: authorization ? { authorization } : {} });

  it('answers 200 with the cache token and what it grants', async () => {
    const response = await post(`Bearer ${await issuer.sign()}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({
      token: expect.any(String),
      expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      read: ['acme/app', 'acme/*'],
      write: 'acme/app',
      public_keys: publicKeys,
      cache_url: 'https://cache.example.com',
    });
    expect((await exchange.verifyCacheToken(body.token as string)).write).toBe('acme/app');
  });

  it('answers 401 without a bearer token, or with a bad one, and issues nothing', async () => {
    for (const authorization of [undefined, 'Basic Zm9vOmJhcg==', 'Bearer']) {
      const response = await post(authorization);
      expect([response.status, await response.text()]).toEqual([
        401,
        'missing Authorization: Bearer <CI OIDC ID token>\n',
      ]);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    }
    const expired = await post(`Bearer ${await issuer.forge.expired()}`);
    expect([expired.status, await expired.text()]).toEqual([401, 'ID token: expired\n']);
  });

  it('answers 403 naming the failing claims when the policy grants nothing', async () => {
    const policed = exchangeFor(issuer, 'slices:\n  - name: acme/app\n    write: [{ repository_id: "1" }]\n');
    const handler = createTokenHandler({ exchange: policed, publicKeys, cacheUrl: 'http://x' });
    const strict = createServer((req, res) => {
      handler(req, res).catch((error: unknown) => sendError(res, error));
    });
    await new Promise<void>((resolve) => strict.listen(0, '127.0.0.1', resolve));
    try {
      const response = await fetch(
        `http://127.0.0.1:${(strict.address() as AddressInfo).port}/_api/v1/token`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${await issuer.sign(githubClaims())}` },
        },
      );
      expect([response.status, await response.text()]).toEqual([
        403,
        `no slice is granted to this token: slice 'acme/app' write: repository_id is "100001", needs "1"\n`,
      ]);
    } finally {
      strict.closeAllConnections();
      await new Promise((resolve) => strict.close(resolve));
    }
  });
});
