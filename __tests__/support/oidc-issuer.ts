/**
 * A local OIDC issuer standing in for GitHub Actions' (https://token.actions.githubusercontent.com):
 * a real HTTP server on 127.0.0.1 with OIDC discovery and a JWKS of RS256 keys made with jose, that
 * signs GitHub-shaped ID tokens, rotates keys, forges bad tokens for tests, and also plays the
 * runner's ID-token endpoint that `@actions/core`'s `getIDToken(audience)` calls.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import type { IssuerConfig } from '../../src/server/config/config-schema.js';

export type Claims = Record<string, unknown>;

/** Realistic GitHub Actions ID token claims (minus iss/aud/times, which `sign` adds). */
export interface GithubClaims extends Claims {
  sub: string;
  repository: string;
  repository_id: string;
  repository_owner: string;
  repository_owner_id: string;
  repository_visibility: string;
  ref: string;
  ref_type: string;
  ref_protected: string;
  sha: string;
  event_name: string;
  workflow: string;
  workflow_ref: string;
  workflow_sha: string;
  job_workflow_ref: string;
  job_workflow_sha: string;
  run_id: string;
  run_number: string;
  run_attempt: string;
  actor: string;
  actor_id: string;
  runner_environment: string;
  head_ref: string;
  base_ref: string;
  environment?: string;
}

/**
 * Claims of a `push` to `main` of `acme/app`. Overrides win; `repository_owner`, `sub` and the
 * workflow refs follow `repository`, `ref`, `event_name` and `environment` unless given too.
 */
export function githubClaims(overrides: Partial<GithubClaims> & Claims = {}): GithubClaims {
  const repository = (overrides.repository as string | undefined) ?? 'acme/app';
  const ref = (overrides.ref as string | undefined) ?? 'refs/heads/main';
  const eventName = (overrides.event_name as string | undefined) ?? 'push';
  const environment = overrides.environment as string | undefined;
  const sha = 'a3c5e0c1f6b0d0e8a1b2c3d4e5f60718293a4b5c';
  const workflowRef = `${repository}/.github/workflows/ci.yml@${ref}`;
  const sub = environment
    ? `repo:${repository}:environment:${environment}`
    : eventName === 'pull_request' || eventName === 'pull_request_target'
      ? `repo:${repository}:pull_request`
      : `repo:${repository}:ref:${ref}`;
  return {
    sub,
    repository,
    repository_id: '100001',
    repository_owner: repository.split('/')[0] as string,
    repository_owner_id: '5001',
    repository_visibility: 'private',
    ref,
    ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
    ref_protected: 'false',
    sha,
    event_name: eventName,
    workflow: 'CI',
    workflow_ref: workflowRef,
    workflow_sha: sha,
    job_workflow_ref: workflowRef,
    job_workflow_sha: sha,
    run_id: '9000000001',
    run_number: '42',
    run_attempt: '1',
    actor: 'octocat',
    actor_id: '583231',
    runner_environment: 'github-hosted',
    head_ref: '',
    base_ref: '',
    ...overrides,
  };
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  spki: string;
}

async function makeKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(8).toString('hex');
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    spki: await exportSPKI(publicKey),
  };
}

/** Tokens a test presents to prove they are refused. Claims default to `githubClaims()`. */
export interface Forgeries {
  /** `alg: none`, no signature. */
  algNone(claims?: Claims): Promise<string>;
  /** HS256 whose HMAC secret is the issuer's public key (the classic algorithm confusion). */
  hs256WithPublicKey(claims?: Claims): Promise<string>;
  /** RS256 signed by a key the issuer never published; `sameKid` (default) claims the real key's kid. */
  otherKey(claims?: Claims, options?: { sameKid?: boolean }): Promise<string>;
  /** Correctly signed, but `iss` names another issuer. */
  wrongIssuer(claims?: Claims): Promise<string>;
  /** Correctly signed, for another audience. */
  wrongAudience(claims?: Claims): Promise<string>;
  /** Correctly signed, expired ten minutes ago (well beyond any clock leeway). */
  expired(claims?: Claims): Promise<string>;
  /** Correctly signed, valid only in ten minutes. */
  notYetValid(claims?: Claims): Promise<string>;
}

/** The runner's ID-token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` / `_TOKEN`). */
export interface RunnerTokenEndpoint {
  /** `ACTIONS_ID_TOKEN_REQUEST_URL`: already has a query string, as on GitHub (`&audience=` is appended). */
  readonly url: string;
  /** `ACTIONS_ID_TOKEN_REQUEST_TOKEN`. */
  readonly token: string;
  /** The two environment variables a step needs to call `getIDToken`. */
  env(): { ACTIONS_ID_TOKEN_REQUEST_URL: string; ACTIONS_ID_TOKEN_REQUEST_TOKEN: string };
  /** Claims of the "current job", merged over `githubClaims()`. */
  setJobClaims(overrides: Partial<GithubClaims> & Claims): void;
  /** Refuse every request with 403 and this message (as for a fork's pull request); null to serve again. */
  refuse(message: string | null): void;
  /** Audiences requested so far, in order. */
  readonly audiences: readonly string[];
}

export interface OidcIssuer {
  /** The issuer URL, the `iss` of its tokens: `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly jwksUri: string;
  /** The audience `sign` puts in tokens by default. */
  readonly audience: string;
  /** The kid of the key that signs now. */
  readonly kid: string;
  /** How many times the JWKS was fetched. */
  readonly jwksRequests: number;
  /** An entry for `Config.issuers` that trusts this issuer (http allowed: it is on loopback). */
  issuerConfig(name?: string): IssuerConfig;
  /** A valid ID token: `claims` (default `githubClaims()`) over iss, aud, iat, nbf, exp (+5 min), jti. A claim set to `undefined` is left out. */
  sign(claims?: Claims): Promise<string>;
  /** A new signing key with a new kid; the old one stays published unless `dropOld`. Returns the new kid. */
  rotateKey(options?: { dropOld?: boolean }): Promise<string>;
  readonly forge: Forgeries;
  readonly runner: RunnerTokenEndpoint;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const RUNNER_PATH = '/_runner/idtoken';

export async function startOidcIssuer(options: { audience?: string } = {}): Promise<OidcIssuer> {
  const audience = options.audience ?? 'sluice';
  let keys: SigningKey[] = [await makeKey()];
  const current = () => keys.at(-1) as SigningKey;
  let jwksRequests = 0;
  let jobOverrides: Claims = {};
  let refusal: string | null = null;
  const audiences: string[] = [];
  const runnerToken = randomBytes(16).toString('hex');
  let url = '';

  const withDefaults = (claims: Claims, registered: Claims = {}): Claims => {
    const now = Math.floor(Date.now() / 1000);
    const payload: Claims = {
      jti: randomUUID(),
      iss: url,
      aud: audience,
      iat: now,
      nbf: now,
      exp: now + 300,
      ...registered,
      ...claims,
    };
    for (const key of Object.keys(payload)) if (payload[key] === undefined) delete payload[key];
    return payload;
  };
  const signWith = (key: { privateKey: CryptoKey; kid: string }, payload: Claims) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key.kid }).sign(key.privateKey);
  const now = () => Math.floor(Date.now() / 1000);

  function serveRunner(req: IncomingMessage, res: ServerResponse, requestUrl: URL): void {
    if (req.headers.authorization !== `Bearer ${runnerToken}`)
      return json(res, 401, { message: 'bad runner token' });
    if (refusal !== null) return json(res, 403, { message: refusal });
    const claims = githubClaims(jobOverrides);
    const requested = requestUrl.searchParams.get('audience');
    audiences.push(requested ?? '');
    const aud = requested ?? `https://github.com/${claims.repository_owner}`;
    signWith(current(), withDefaults(claims, { aud })).then(
      (value) => json(res, 200, { count: 1, value }),
      (error: Error) => json(res, 500, { message: error.message }),
    );
  }

  const server = createServer((req, res) => {
    const requestUrl = new URL(req.url ?? '/', url);
    if (req.method !== 'GET') return json(res, 405, { message: 'GET only' });
    switch (requestUrl.pathname) {
      case '/.well-known/openid-configuration':
        return json(res, 200, {
          issuer: url,
          jwks_uri: `${url}/.well-known/jwks`,
          subject_types_supported: ['public', 'pairwise'],
          response_types_supported: ['id_token'],
          id_token_signing_alg_values_supported: ['RS256'],
          claims_supported: [
            'sub',
            'aud',
            'exp',
            'iat',
            'iss',
            'jti',
            'nbf',
            'ref',
            'repository',
            'repository_id',
            'event_name',
          ],
          scopes_supported: ['openid'],
        });
      case '/.well-known/jwks':
        jwksRequests++;
        return json(res, 200, { keys: keys.map((key) => key.jwk) });
      case RUNNER_PATH:
        return serveRunner(req, res, requestUrl);
      default:
        return json(res, 404, { message: 'not found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const forge: Forgeries = {
    algNone: async (claims = githubClaims()) => new UnsecuredJWT(withDefaults(claims)).encode(),
    hs256WithPublicKey: async (claims = githubClaims()) =>
      new SignJWT(withDefaults(claims))
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: current().kid })
        .sign(new TextEncoder().encode(current().spki)),
    otherKey: async (claims = githubClaims(), { sameKid = true } = {}) => {
      const stranger = await makeKey();
      return signWith(
        { privateKey: stranger.privateKey, kid: sameKid ? current().kid : stranger.kid },
        withDefaults(claims),
      );
    },
    wrongIssuer: async (claims = githubClaims()) =>
      signWith(current(), withDefaults(claims, { iss: 'https://token.example.com' })),
    wrongAudience: async (claims = githubClaims()) =>
      signWith(current(), withDefaults(claims, { aud: 'someone-else' })),
    expired: async (claims = githubClaims()) =>
      signWith(current(), withDefaults(claims, { iat: now() - 900, nbf: now() - 900, exp: now() - 600 })),
    notYetValid: async (claims = githubClaims()) =>
      signWith(current(), withDefaults(claims, { nbf: now() + 600, exp: now() + 900 })),
  };

  const runner: RunnerTokenEndpoint = {
    url: `${url}${RUNNER_PATH}?api-version=2.0`,
    token: runnerToken,
    env: () => ({ ACTIONS_ID_TOKEN_REQUEST_URL: runner.url, ACTIONS_ID_TOKEN_REQUEST_TOKEN: runnerToken }),
    setJobClaims: (overrides) => {
      jobOverrides = { ...overrides };
    },
    refuse: (message) => {
      refusal = message;
    },
    audiences,
  };

  return {
    url,
    jwksUri: `${url}/.well-known/jwks`,
    audience,
    get kid() {
      return current().kid;
    },
    get jwksRequests() {
      return jwksRequests;
    },
    issuerConfig: (name = 'github') => ({ name, issuer: url, audience, allowInsecureHttp: true }),
    sign: (claims = githubClaims()) => signWith(current(), withDefaults(claims)),
    async rotateKey({ dropOld = false } = {}) {
      const next = await makeKey();
      keys = dropOld ? [next] : [...keys, next];
      return next.kid;
    },
    forge,
    runner,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
