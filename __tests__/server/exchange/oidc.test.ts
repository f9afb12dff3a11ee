import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { githubClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { createExchange } from '../../../src/server/exchange/index.js';
import { configYaml, exchangeFor, expectHttpError, newTokenKey } from './setup.js';

describe('OIDC ID token verification (a real local issuer, real jose)', () => {
  let issuer: OidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
  });
  afterAll(() => issuer.close());

  it('exchanges a valid GitHub-shaped token found through OIDC discovery, carrying the CI identity', async () => {
    const exchange = exchangeFor(issuer);
    const { token, expiresAt, grant } = await exchange.exchange(await issuer.sign());
    expect(grant).toEqual({
      kind: 'ci',
      read: ['acme/app', 'acme/*'],
      // Template grants read only slices bound to these ids (issue 18 item 2), not by name.
      readOwners: [
        { issuer: 'github', repositoryId: '100001' },
        { issuer: 'github', repositoryOwnerId: '5001' },
      ],
      write: 'acme/app',
      bindWrite: true, // the default policy's `${repository}` template
      identity: expect.objectContaining({
        issuer: 'github',
        repository: 'acme/app',
        repository_id: '100001',
        repository_owner_id: '5001',
        ref: 'refs/heads/main',
        workflow: 'CI',
        run_id: '9000000001',
        sha: githubClaims().sha,
        event_name: 'push',
      }),
    });
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    // Verifying also tells when the token ends (NAR links never outlive it).
    expect(await exchange.verifyCacheToken(token)).toEqual({
      ...grant,
      expiresAt: expiresAt.getTime() / 1000,
    });
  });

  const badTokens: [string, () => Promise<string>, RegExp][] = [
    ['alg none', () => issuer.forge.algNone(), /^ID token: signing algorithm not allowed$/],
    [
      'HS256 keyed with the public key',
      () => issuer.forge.hs256WithPublicKey(),
      /^ID token: signing algorithm not allowed$/,
    ],
    ['signed by another key under the real kid', () => issuer.forge.otherKey(), /^ID token: bad signature$/],
    [
      'signed by another key under its own kid',
      () => issuer.forge.otherKey(undefined, { sameKid: false }),
      /key the issuer does not publish/,
    ],
    [
      'another issuer',
      () => issuer.forge.wrongIssuer(),
      /^ID token: unknown issuer "https:\/\/token.example.com"$/,
    ],
    ['another audience', () => issuer.forge.wrongAudience(), /^ID token: wrong audience$/],
    ['expired', () => issuer.forge.expired(), /^ID token: expired$/],
    ['not valid yet', () => issuer.forge.notYetValid(), /^ID token: not valid yet/],
    [
      'issued in the future',
      () => issuer.sign({ ...githubClaims(), iat: Math.floor(Date.now() / 1000) + 600 }),
      /issued in the future/,
    ],
    ['without exp', () => issuer.sign({ ...githubClaims(), exp: undefined }), /claim 'exp'/],
    ['not a JWT', async () => 'not-a-jwt', /^ID token: malformed token$/],
    ['a truncated JWT', async () => (await issuer.sign()).slice(0, -20), /bad signature|malformed/],
  ];

  it.each(badTokens)('refuses a token %s with 401 naming the reason', async (_name, makeToken, message) => {
    const exchange = exchangeFor(issuer);
    const error = await expectHttpError(exchange.exchange(await makeToken()), 401, message);
    expect(error.headers['www-authenticate']).toBe('Bearer');
  });

  it('fetches the JWKS once, then picks up a rotated key on its unknown kid', async () => {
    const rotating = await startOidcIssuer();
    try {
      const exchange = exchangeFor(rotating, '', { jwksCooldownMs: 0 });
      const patient = exchangeFor(rotating); // the default 30 s cooldown
      await exchange.exchange(await rotating.sign());
      await exchange.exchange(await rotating.sign());
      await patient.exchange(await rotating.sign());
      expect(rotating.jwksRequests).toBe(2);
      const oldKid = rotating.kid;
      const newKid = await rotating.rotateKey();
      expect(newKid).not.toBe(oldKid);
      const { grant } = await exchange.exchange(await rotating.sign());
      expect(grant.write).toBe('acme/app');
      expect(rotating.jwksRequests).toBe(3);
      // Within the cooldown an unknown kid does not fetch again: forged kids cannot hammer the issuer.
      await expectHttpError(patient.exchange(await rotating.sign()), 401, /key the issuer does not publish/);
      expect(rotating.jwksRequests).toBe(3);
    } finally {
      await rotating.close();
    }
  });

  it('answers 503 naming the problem when discovery names another issuer', async () => {
    const exchange = exchangeFor({ ...issuer, url: `${issuer.url}/` } as OidcIssuer);
    const token = await issuer.sign({ ...githubClaims(), iss: `${issuer.url}/` });
    await expectHttpError(exchange.exchange(token), 503, /OIDC discovery at .* names another issuer$/);
  });

  it('uses an explicit jwks_uri without discovery', async () => {
    const config = parseConfig(
      configYaml(issuer).replace(
        '    allow_insecure_http',
        `    jwks_uri: ${issuer.jwksUri}\n    allow_insecure_http`,
      ),
    );
    expect(config.issuers[0]?.jwksUri).toBe(issuer.jwksUri);
    const exchange = createExchange(config, newTokenKey());
    expect((await exchange.exchange(await issuer.sign())).grant.write).toBe('acme/app');
  });

  it('answers 503 (not 401: the token may be fine) when the issuer cannot be reached', async () => {
    const flaky = await startOidcIssuer();
    const token = await flaky.sign();
    const exchange = exchangeFor(flaky);
    await flaky.close();
    await expectHttpError(exchange.exchange(token), 503, /issuer's keys are unavailable/);
  });
});
