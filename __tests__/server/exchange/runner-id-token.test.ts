import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { getIDToken } from '@actions/core';
import { decodeJwt } from 'jose';
import { startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { exchangeFor } from './setup.js';

/** The runner's ID-token endpoint of the local issuer, called by the real `@actions/core`. */
describe('runner ID-token endpoint', () => {
  let issuer: OidcIssuer;
  const saved = { ...process.env };
  beforeAll(async () => {
    issuer = await startOidcIssuer();
    Object.assign(process.env, issuer.runner.env());
  });
  afterEach(() => {
    issuer.runner.refuse(null);
    issuer.runner.setJobClaims({});
  });
  afterAll(async () => {
    for (const key of Object.keys(issuer.runner.env())) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    await issuer.close();
  });

  it("serves getIDToken(audience) with the current job's claims, and the token exchanges", async () => {
    issuer.runner.setJobClaims({ repository: 'acme/lib', repository_id: '100002', event_name: 'schedule' });
    const idToken = await getIDToken('sluice');
    expect(decodeJwt(idToken)).toMatchObject({
      iss: issuer.url,
      aud: 'sluice',
      repository: 'acme/lib',
      sub: 'repo:acme/lib:ref:refs/heads/main',
    });
    expect(issuer.runner.audiences.at(-1)).toBe('sluice');
    const { grant } = await exchangeFor(issuer).exchange(idToken);
    expect({ read: grant.read, write: grant.write }).toEqual({
      read: ['acme/lib', 'acme/*'],
      write: 'acme/lib',
    });
  });

  it('refuses like a fork pull request, and the token then fails in getIDToken', async () => {
    issuer.runner.refuse('id-token is not available for pull requests from forks');
    await expect(getIDToken('sluice')).rejects.toThrow(/Failed to get ID Token[\s\S]*403/);
  });

  it('refuses a wrong request token', async () => {
    const response = await fetch(`${issuer.runner.url}&audience=sluice`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(response.status).toBe(401);
  });
});
