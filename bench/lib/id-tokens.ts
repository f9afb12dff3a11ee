/**
 * The OIDC ID tokens a CI job would present. GitHub's issuer is the one thing replaced by a
 * stand-in: the local issuer of the test support (its own keys and JWKS, trusted by config).
 */
import { githubClaims, startOidcIssuer } from '../../__tests__/support/oidc-issuer.js';
import type { IdTokenSource } from './sluice.js';

export async function startIdTokenSource(audience: string): Promise<IdTokenSource> {
  const issuer = await startOidcIssuer({ audience });
  return {
    issuerUrl: issuer.url,
    runnerEndpoint: { url: issuer.runner.url, token: issuer.runner.token },
    mint: (claims) => issuer.sign(githubClaims(claims)),
    close: () => issuer.close(),
  };
}
