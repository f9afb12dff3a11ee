/**
 * Rate limits per client address on the real server: failed authentications and token exchanges
 * beyond the configured rate answer 429 with Retry-After; X-Forwarded-For names the client only
 * when the connection comes from a proxy listed in `trust_proxy`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { githubClaims } from '../support/oidc-issuer.js';
import { startTestServer, type TestServer } from '../support/server.js';

let clock = Date.now();
let proxied: TestServer;
let direct: TestServer;
const MISSING = `${'0'.repeat(32)}.narinfo`;

beforeAll(async () => {
  const limits = 'rate_limits:\n  failed_auth: 3/1m\n  token_exchanges: 4/1m\n';
  proxied = await startTestServer({ yaml: `${limits}trust_proxy: [127.0.0.1]\n`, now: () => clock });
  direct = await startTestServer({ yaml: limits, now: () => clock });
});
afterAll(async () => {
  await proxied?.close();
  await direct?.close();
});

function lookup(server: TestServer, headers: Record<string, string>): Promise<Response> {
  return fetch(`${server.url}/${MISSING}`, { headers });
}

describe('rate limits per client address', () => {
  it('failed authentications beyond the rate get 429 with Retry-After, for that address only', async () => {
    const from = (address: string, token?: string) => ({
      'x-forwarded-for': `10.9.9.9, ${address}`,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    });
    for (let i = 0; i < 3; i++)
      expect((await lookup(proxied, from('203.0.113.7', 'forged'))).status).toBe(401);
    const limited = await lookup(proxied, from('203.0.113.7', 'forged'));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('20');
    expect(await limited.text()).toBe(
      'too many failed authentications from 203.0.113.7 (at most 3 per 60 s): retry in 20 s\n',
    );
    // A good token from that address waits too; requests without credentials do not.
    const good = await proxied.ciToken();
    expect((await lookup(proxied, from('203.0.113.7', good))).status).toBe(429);
    expect((await lookup(proxied, from('203.0.113.7'))).status).toBe(404);
    // Another client behind the same proxy is not affected.
    expect((await lookup(proxied, from('203.0.113.8', 'forged'))).status).toBe(401);

    clock += 20_000;
    expect((await lookup(proxied, from('203.0.113.7', good))).status).toBe(404);
    const metrics = await (await fetch(`${proxied.url}/metrics`)).text();
    expect(metrics).toMatch(/sluice_rate_limited_total\{limit="failed_auth"\} 2/);
  });

  it('token exchanges beyond the rate get 429 with Retry-After', async () => {
    const exchange = async () =>
      fetch(`${proxied.url}/_api/v1/token`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await proxied.issuer.sign(githubClaims())}`,
          'x-forwarded-for': '198.51.100.1',
        },
      });
    for (let i = 0; i < 4; i++) expect((await exchange()).status).toBe(200);
    const limited = await exchange();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('15');
    expect(await limited.text()).toContain('too many token exchanges from 198.51.100.1 (at most 4 per 60 s)');
    clock += 15_000;
    expect((await exchange()).status).toBe(200);
  });

  it('without trust_proxy, X-Forwarded-For is ignored: the connection is the client', async () => {
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3'])
      expect(
        (await lookup(direct, { 'x-forwarded-for': address, authorization: 'Bearer forged' })).status,
      ).toBe(401);
    const limited = await lookup(direct, { 'x-forwarded-for': '192.0.2.4', authorization: 'Bearer forged' });
    expect(limited.status).toBe(429);
    expect(await limited.text()).toContain('too many failed authentications from 127.0.0.1');
  });
});
