/**
 * The OIDC ID tokens a CI job would present. GitHub's issuer is the one thing replaced by a
 * stand-in: the local issuer of the test support (its own keys and JWKS, trusted by config).
 */
import type { IdTokenSource } from './sluice.js';

export async function startIdTokenSource(): Promise<IdTokenSource> {
  throw new Error('__tests__/support/oidc-issuer.ts is not in the tree yet');
}
