/**
 * Slices that must stay apart, attacked through a real server: a template slice landing on a
 * configured one (issue 19 finding 1), reads by owner *name* after a name changed hands (issue 18
 * item 2), and two issuers sharing one namespace (issue 19 finding 5).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseConfig } from '../../src/server/config/server-config.js';
import { githubClaims } from '../support/oidc-issuer.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  storedState,
  type NarUpload,
  type TestServer,
} from '../support/server.js';

async function freshUpload(): Promise<NarUpload> {
  return narUploadFor((await nixBuild(randomChainExpr(1, 200)))[0] as string);
}

async function narinfoStatus(server: TestServer, upload: NarUpload, token: string): Promise<number> {
  const res = await fetch(`${server.url}/${upload.hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await res.arrayBuffer();
  return res.status;
}

async function exchange(
  server: TestServer,
  claims: Record<string, string>,
): Promise<{ status: number; body: { write?: string | null; read?: string[] } }> {
  const signed = await server.issuer.sign(githubClaims(claims));
  const res = await fetch(`${server.url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${signed}` },
  });
  return { status: res.status, body: (await res.json()) as { write?: string | null; read?: string[] } };
}

describe('a template slice never lands on a configured one (19.1)', () => {
  // The policy: a configured release slice beside the per-repository template.
  const YAML = `
slices:
  - name: acme/release
    write:
      - { repository_id: '5678', environment: production }
    read:
      - { repository_owner_id: '1234' }
  - name: \${repository}
    write:
      - { repository_owner_id: '1234', event_name: push }
`;
  const INTRUDER = { repository: 'acme/release', repository_id: '9999', repository_owner_id: '1234' };
  const RELEASER = {
    repository: 'acme/app',
    repository_id: '5678',
    repository_owner_id: '1234',
    environment: 'production',
  };
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ yaml: YAML });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a new repository named acme/release gets no write slice, its upload is refused, nothing is bound', async () => {
    const { status, body } = await exchange(server, INTRUDER);
    expect(status).toBe(200); // it may read what its owner's rule grants…
    expect(body.write).toBeNull(); // …but never write the configured slice
    const intruderToken = await server.ciToken(INTRUDER);
    const upload = await freshUpload();
    expect(await pushRaw(server.url, intruderToken, upload)).toEqual([403, 403]);
    expect(storedState(server.dataDir)).toMatchObject({ narinfos: 0, slices: 0 });
    expect(await narinfoStatus(server, upload, await server.readToken(['acme/release']))).toBe(404);
  });

  it('the slice stays with its configured writers', async () => {
    const upload = await freshUpload();
    expect(await pushRaw(server.url, await server.ciToken(RELEASER), upload)).toEqual([201, 201]);
    expect(await narinfoStatus(server, upload, await server.readToken(['acme/release']))).toBe(200);
    expect(storedState(server.dataDir).slices).toBe(0); // configured slices are not bound to anyone
  });

  it('the config loader refuses a configured name that only a template could ever have written', () => {
    expect(() =>
      parseConfig(
        `slices:
  - name: acme/release
    read:
      - { repository_owner_id: '1234' }
  - name: \${repository}
    write:
      - { repository_owner_id: '1234', event_name: push }
`,
        'sluice.yml',
      ),
    ).toThrow(
      /^sluice\.yml:2: slices\[0\]\.name: 'acme\/release' could also be made by the template '\$\{repository\}'/,
    );
  });
});

describe('default read grants are bound to ids, not names (18.2)', () => {
  const OLD_LIB = { repository: 'acme/lib', repository_id: '100002', repository_owner_id: '5001' };
  // The owner name `acme` deleted and registered again: same names, new ids.
  const NEW_OWNER = { repository: 'acme/other', repository_id: '700001', repository_owner_id: '7001' };
  const NEW_LIB = { repository: 'acme/lib', repository_id: '700002', repository_owner_id: '7001' };
  let server: TestServer;
  let upload: NarUpload;
  beforeAll(async () => {
    server = await startTestServer();
    upload = await freshUpload();
    expect(await pushRaw(server.url, await server.ciToken(OLD_LIB), upload)).toEqual([201, 201]);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the old owner's repositories still read it", async () => {
    const sibling = { repository: 'acme/app', repository_id: '100001', repository_owner_id: '5001' };
    expect(await narinfoStatus(server, upload, await server.ciToken(sibling))).toBe(200);
  });

  it("a re-registered owner name reads nothing of the old owner's slices", async () => {
    expect(await narinfoStatus(server, upload, await server.ciToken(NEW_OWNER))).toBe(404);
  });

  it('a re-registered repository name neither reads nor writes the old slice', async () => {
    const token = await server.ciToken(NEW_LIB);
    expect(await narinfoStatus(server, upload, token)).toBe(404);
    const res = await fetch(`${server.url}/${upload.narUrl}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(404);
    expect((await pushRaw(server.url, token, await freshUpload()))[0]).toBe(403);
  });
});

describe('several issuers do not share one namespace (19.5)', () => {
  const GITHUB_APP = { repository: 'acme/app', repository_id: '100001', repository_owner_id: '5001' };
  // The second provider's `acme` is another organisation; its ids may even equal GitHub's.
  const FORGEJO_APP = { repository: 'acme/app', repository_id: '100001', repository_owner_id: '5001' };
  const FORGEJO_TOOL = { repository: 'acme/tool', repository_id: '100003', repository_owner_id: '5001' };
  const GITHUB_TOOL = { repository: 'acme/tool', repository_id: '200003', repository_owner_id: '5001' };

  describe('the default policy', () => {
    let server: TestServer;
    let githubPath: NarUpload;
    beforeAll(async () => {
      server = await startTestServer({ otherIssuers: ['forgejo'] });
      githubPath = await freshUpload();
      expect(await pushRaw(server.url, await server.ciToken(GITHUB_APP), githubPath)).toEqual([201, 201]);
    });
    afterAll(async () => {
      await server?.close();
    });

    it("a second issuer's token for acme/app reads nothing of GitHub's acme/app", async () => {
      const token = await server.ciToken(FORGEJO_APP, 'forgejo');
      expect(await narinfoStatus(server, githubPath, token)).toBe(404);
      const res = await fetch(`${server.url}/${githubPath.narUrl}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(404);
    });

    it("the second issuer writing acme/tool first neither takes GitHub's acme/tool nor reaches it", async () => {
      const forgejoPath = await freshUpload();
      expect(await pushRaw(server.url, await server.ciToken(FORGEJO_TOOL, 'forgejo'), forgejoPath)).toEqual([
        201, 201,
      ]);
      const githubTool = await server.ciToken(GITHUB_TOOL);
      expect(await pushRaw(server.url, githubTool, await freshUpload())).toEqual([201, 201]);
      expect(await narinfoStatus(server, forgejoPath, githubTool)).toBe(404);
      expect(await narinfoStatus(server, forgejoPath, await server.ciToken(FORGEJO_APP, 'forgejo'))).toBe(
        200,
      );
    });
  });

  it('with one template for both issuers, a binding made by one issuer refuses the other, even for the same id', async () => {
    const server = await startTestServer({
      otherIssuers: ['forgejo'],
      yaml: `
slices:
  - name: \${repository}
    write:
      - { issuer: github, repository_owner_id: '5001', event_name: push }
      - { issuer: forgejo, repository_owner_id: '5001', event_name: push }
    read:
      - { issuer: github, repository_owner_id: '5001' }
      - { issuer: forgejo, repository_owner_id: '5001' }
`,
    });
    try {
      const githubPath = await freshUpload();
      expect(await pushRaw(server.url, await server.ciToken(GITHUB_APP), githubPath)).toEqual([201, 201]);
      const forgejoToken = await server.ciToken(FORGEJO_APP, 'forgejo');
      const res = await fetch(`${server.url}/${(await freshUpload()).narUrl}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${forgejoToken}` },
        body: 'x',
      });
      expect([res.status, await res.text()]).toEqual([
        403,
        "slice 'acme/app' belongs to a repository of another issuer ('github')\n",
      ]);
      expect(await narinfoStatus(server, githubPath, forgejoToken)).toBe(404);
    } finally {
      await server.close();
    }
  });
});
