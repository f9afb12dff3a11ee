import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { sliceMatches } from '../../../src/server/exchange/index.js';
import { githubClaims, startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { configYaml, exchangeFor, expectHttpError, newTokenKey } from './setup.js';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { createExchange } from '../../../src/server/exchange/index.js';

describe('policy: claims → slices', () => {
  let issuer: OidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
  });
  afterAll(() => issuer.close());

  const grantFor = async (slices: string, claims = githubClaims()) =>
    (await exchangeFor(issuer, slices).exchange(await issuer.sign(claims))).grant;

  describe('the default policy (no slices configured)', () => {
    it.each(['push', 'schedule', 'workflow_dispatch', 'merge_group', 'release'])(
      'lets a %s workflow write its own repository and read its owner',
      async (event) => {
        const grant = await grantFor('', githubClaims({ event_name: event }));
        expect({ write: grant.write, read: grant.read }).toEqual({
          write: 'acme/app',
          read: ['acme/app', 'acme/*'],
        });
      },
    );

    it.each(['pull_request', 'pull_request_target', 'issue_comment', 'workflow_run'])(
      'gives a %s workflow read access only',
      async (event) => {
        const grant = await grantFor('', githubClaims({ event_name: event }));
        expect({ write: grant.write, read: grant.read }).toEqual({ write: null, read: ['acme/*'] });
      },
    );

    it("reads the owner's other repositories but nothing of another owner", async () => {
      const grant = await grantFor('', githubClaims({ repository: 'acme/lib', repository_id: '100002' }));
      const canRead = (slice: string) => grant.read.some((pattern) => sliceMatches(pattern, slice));
      expect(canRead('acme/app')).toBe(true);
      expect(canRead('acme/lib')).toBe(true);
      const outsider = await grantFor(
        '',
        githubClaims({ repository: 'evil/app', repository_id: '666', repository_owner_id: '66' }),
      );
      expect(outsider.write).toBe('evil/app');
      expect(outsider.read.some((pattern) => sliceMatches(pattern, 'acme/app'))).toBe(false);
    });

    it('refuses claims that would make an odd slice name (403 naming the claim)', async () => {
      const error = await expectHttpError(
        exchangeFor(issuer).exchange(
          await issuer.sign(githubClaims({ repository: 'acme/../x', repository_owner: 'ac*' })),
        ),
        403,
        /claim 'repository' \("acme\/..\/x"\) is not usable in a slice name/,
      );
      expect(error.message).toMatch(/claim 'repository_owner' \("ac\*"\) is not usable/);
    });
  });

  const configured = `slices:
  - name: acme/app
    read:
      - { issuer: github, repository_owner_id: 5001 }
    write:
      - { issuer: github, repository_id: "100001", ref: [refs/heads/main, refs/heads/release-*], event_name: push }
  - name: acme/deploy
    write:
      - { repository_id: "100001", environment: production }
  - name: ci/\${repository_owner}/\${environment}
    read:
      - { workflow: "Deploy *" }
`;

  it('matches strings, unquoted numbers, globs and lists; every key must match', async () => {
    expect((await grantFor(configured)).write).toBe('acme/app');
    expect((await grantFor(configured, githubClaims({ ref: 'refs/heads/release-2.1' }))).write).toBe(
      'acme/app',
    );
    const feature = await grantFor(configured, githubClaims({ ref: 'refs/heads/feature' }));
    expect({ write: feature.write, read: feature.read }).toEqual({ write: null, read: ['acme/app'] });
  });

  it('lets a protected environment write its slice, and fills templates from claims', async () => {
    const grant = await grantFor(
      configured,
      githubClaims({ environment: 'production', workflow: 'Deploy prod', ref: 'refs/heads/x' }),
    );
    expect(grant.write).toBe('acme/deploy');
    expect(grant.read).toEqual(['acme/app', 'acme/deploy', 'ci/acme/production']);
  });

  it('answers 403 naming each failing claim when nothing is granted', async () => {
    const stranger = githubClaims({
      repository: 'other/x',
      repository_id: '7',
      repository_owner_id: '8',
      event_name: 'pull_request',
    });
    const error = await expectHttpError(
      exchangeFor(issuer, configured).exchange(await issuer.sign(stranger)),
      403,
      /^no slice is granted/,
    );
    expect(error.message).toContain(`slice 'acme/app' read: repository_owner_id is "8", needs "5001"`);
    expect(error.message).toContain(`repository_id is "7", needs "100001"`);
    expect(error.message).toContain(`event_name is "pull_request", needs "push"`);
    expect(error.message).toContain(
      `slice 'acme/deploy' write: repository_id is "7", needs "100001", environment is missing`,
    );
    expect(error.message).toContain(`workflow is "CI", needs "Deploy *"`);
  });

  it('matches the issuer a rule names when several are trusted', async () => {
    const other = await startOidcIssuer();
    try {
      const config = parseConfig(
        `${configYaml(issuer)}  - name: forgejo
    issuer: ${other.url}
    allow_insecure_http: true
slices:
  - name: shared
    read:
      - { issuer: forgejo, repository_owner: acme }
`,
      );
      const exchange = createExchange(config, newTokenKey());
      expect((await exchange.exchange(await other.sign())).grant.read).toEqual(['shared']);
      await expectHttpError(
        exchange.exchange(await issuer.sign()),
        403,
        /slice 'shared' read: issuer is 'github', needs 'forgejo'/,
      );
    } finally {
      await other.close();
    }
  });

  it('never fills a template into a name the config lists, for reads or writes (403 says why)', async () => {
    const slices = `slices:
  - name: acme/release
    write:
      - { repository_id: '5678', environment: production }
  - name: \${repository}
    read: [ {} ]
    write:
      - { event_name: push }
`;
    const error = await expectHttpError(
      exchangeFor(issuer, slices).exchange(
        await issuer.sign(githubClaims({ repository: 'Acme/Release', repository_id: '9999' })),
      ),
      403,
      /^no slice is granted/,
    );
    expect(error.message).toContain(
      `slice '\${repository}' write: 'acme/release' is a slice named in the config, which no template can make`,
    );
    expect((await grantFor(slices)).write).toBe('acme/app');
  });

  it('gives every issuer after the first its own default namespace, template reads bound to it', async () => {
    const other = await startOidcIssuer();
    try {
      const config = parseConfig(
        `${configYaml(issuer)}  - { name: forgejo, issuer: '${other.url}', allow_insecure_http: true }\n`,
      );
      const exchange = createExchange(config, newTokenKey());
      const fromForgejo = (await exchange.exchange(await other.sign())).grant;
      expect(fromForgejo).toMatchObject({
        write: 'forgejo/acme/app',
        read: ['forgejo/acme/app', 'forgejo/acme/*'],
        readOwners: [
          { issuer: 'forgejo', repositoryId: '100001' },
          { issuer: 'forgejo', repositoryOwnerId: '5001' },
        ],
      });
      expect((await exchange.exchange(await issuer.sign())).grant.write).toBe('acme/app');
    } finally {
      await other.close();
    }
  });

  it('lists public slices, readable without a token', () => {
    const exchange = exchangeFor(
      issuer,
      'slices:\n  - { name: oss/nixpkgs-extras, public: true }\n  - { name: "oss/*", public: true }\n',
    );
    expect(exchange.publicSlices()).toEqual(['oss/nixpkgs-extras', 'oss/*']);
    expect(exchangeFor(issuer).publicSlices()).toEqual([]);
  });
});

describe('sliceMatches', () => {
  it('matches names and * globs, ignoring case', () => {
    expect(sliceMatches('acme/*', 'acme/app')).toBe(true);
    expect(sliceMatches('acme/*', 'Acme/App')).toBe(true);
    expect(sliceMatches('acme/*', 'acmeevil/app')).toBe(false);
    expect(sliceMatches('acme/app', 'acme/app2')).toBe(false);
    expect(sliceMatches('*', 'anything/at/all')).toBe(true);
    expect(sliceMatches('a*b*c', 'a-b-x-c')).toBe(true);
    expect(sliceMatches('a*b*c', 'a-c-b')).toBe(false);
    expect(sliceMatches('a*'.repeat(30) + 'c', 'a'.repeat(200) + 'b')).toBe(false);
    expect(sliceMatches('a*'.repeat(30) + 'b', 'a'.repeat(200) + 'b')).toBe(true);
  });
});
