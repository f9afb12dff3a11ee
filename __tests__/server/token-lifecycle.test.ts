/**
 * Tokens over their life, on two replicas sharing one data directory (one database): an ID token is
 * exchanged once, whichever replica sees it again; a read token made by `sluice token create` is
 * listed with its last use and, once revoked, refused by both replicas; `max_read_token_ttl` caps
 * read tokens' lifetime.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { githubClaims, startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import {
  spawnCli,
  startTestServer,
  substituteFresh,
  writeNetrc,
  type TestServer,
} from '../support/server.js';

let issuer: OidcIssuer;
let data: string;
let clock = Date.now();
let replicas: TestServer[];

beforeAll(async () => {
  issuer = await startOidcIssuer();
  data = mkdtempSync(join(tmpdir(), 'sluice-replicas-'));
  const options = { issuer, dataDir: data, now: () => clock };
  replicas = [await startTestServer(options), await startTestServer(options)];
});
afterAll(async () => {
  for (const replica of replicas ?? []) await replica.close();
  await issuer?.close();
});

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli([...args, '--data', data], { cwd: data });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

function exchange(server: TestServer, idToken: string): Promise<Response> {
  return fetch(`${server.url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${idToken}` },
  });
}

describe('one exchange per ID token', () => {
  it('a second exchange of the same ID token gets 401 naming the replay, on either replica', async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const idToken = await issuer.sign(githubClaims());
    expect((await exchange(a, idToken)).status).toBe(200);
    for (const replica of [a, b]) {
      const again = await exchange(replica, idToken);
      expect(again.status).toBe(401);
      expect(await again.text()).toContain('ID token: already exchanged once (replay)');
    }
    // A fresh ID token of the same job is fine: the rule is per token, not per job.
    expect((await exchange(b, await issuer.sign(githubClaims()))).status).toBe(200);
  });
});

describe('read tokens', () => {
  it('are listed with their last use, and once revoked every replica refuses them', async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const pusher = makeNixMachine();
    const [top] = await nixBuild(randomChainExpr(2, 1000), pusher);
    const netrc = writeNetrc(pusher.dir, await a.ciToken());
    await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${a.url}?compression=zstd`, top!], {
      machine: pusher,
    });

    const created = await cli(['token', 'create', '--read', 'acme/*', '--name', 'laptop', '--ttl', '7d']);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    const id = /\(id ([0-9a-f-]{36})\)/.exec(created.stderr)?.[1];
    expect(id).toBeDefined();

    const before = await cli(['token', 'list', '--json']);
    expect(before.code).toBe(0);
    const listed = JSON.parse(before.stdout.trim()) as Record<string, string | null>;
    expect(listed).toMatchObject({ id, name: 'laptop', read: 'acme/*', last_used: null, status: 'valid' });
    expect(Date.parse(listed.expires!) - Date.parse(listed.created!)).toBe(7 * 86_400_000);

    // Real Nix reads through both replicas with it.
    for (const replica of [a, b])
      expect((await substituteFresh(replica, top!, token)).closure).toHaveLength(2);
    const used = JSON.parse((await cli(['token', 'list', '--json'])).stdout.trim()) as Record<string, string>;
    expect(Date.parse(used.last_used!)).toBe(clock);

    const revoked = await cli(['token', 'revoke', id!]);
    expect(revoked).toMatchObject({ code: 0, stderr: `revoked read token ${id}\n` });
    clock += 1000; // past the one second a replica trusts its last look at the database
    for (const replica of [a, b]) {
      const response = await fetch(`${replica.url}/${top!.slice(11, 43)}.narinfo`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('cache token: read token revoked');
      await expect(substituteFresh(replica, top!, token)).rejects.toThrow();
    }
    expect((await cli(['token', 'list'])).stdout).toBe(
      'id\tname\tread\tcreated\texpires\tlast_used\tstatus\n',
    );
    expect((await cli(['token', 'list', '--all'])).stdout).toContain(`${id}\tlaptop\tacme/*\t`);
    expect(await cli(['token', 'revoke', 'no-such-id'])).toMatchObject({ code: 1 });
  });

  it('cannot be made to live longer than max_read_token_ttl, nor used once older', async () => {
    const tooLong = await cli(['token', 'create', '--read', 'acme/*', '--ttl', '91d']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain('longer than max_read_token_ttl (7776000 s)');
    expect(tooLong.stdout).toBe('');

    const token = (await cli(['token', 'create', '--read', 'acme/*', '--ttl', '90d'])).stdout.trim();
    const server = await startTestServer({
      issuer,
      dataDir: data,
      yaml: 'max_read_token_ttl: 1d\n',
      now: () => clock,
    });
    try {
      const lookup = () =>
        fetch(`${server.url}/${'0'.repeat(32)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
      clock = Date.now();
      expect((await lookup()).status).toBe(404);
      clock += 86_400_000 + 1000;
      const old = await lookup();
      expect(old.status).toBe(401);
      expect(await old.text()).toContain('cache token: read token older than max_read_token_ttl');
    } finally {
      await server.close();
    }
  });
});
