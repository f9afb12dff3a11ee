/**
 * Downloads without the server in the byte path: with `presigned_downloads`, a NAR GET that passes
 * the slice check answers 302 to a short-lived presigned URL of the bucket, and the NAR links the
 * Action's proxy asks for are such URLs. Nix 2.8 follows them, directly or behind the proxy. Cache headers: NARs are
 * immutable (public only for requests without a token), narinfos short-lived.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeNixMachine, nix, nixBuild, randomChainExpr, salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { sharedBackends } from '../support/backends.js';
import {
  narUploadFor,
  pushRaw,
  rawRequest,
  startTestServer,
  substituteFresh,
  writeNetrc,
  type TestServer,
} from '../support/server.js';
import { deletePaths, derivationExpr, hashPart } from '../action/support.js';

let server: TestServer;

beforeAll(async () => {
  const { yaml } = await sharedBackends({ presigned: true });
  server = await startTestServer({ yaml });
});
afterAll(async () => {
  await server?.close();
});

async function push(top: string): Promise<void> {
  const pusher = makeNixMachine();
  const netrc = writeNetrc(pusher.dir, await server.ciToken());
  await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${server.url}?compression=zstd`, top], {
    machine: pusher,
  });
}

/** The logged answers to NAR GETs (or another route's requests) so far, by status. */
function narGetStatuses(route = 'nar', method = 'GET'): number[] {
  return server.logs
    .map((line) => JSON.parse(line) as { msg?: string; method?: string; route?: string; status?: number })
    .filter((entry) => entry.msg === 'request' && entry.method === method && entry.route === route)
    .map((entry) => entry.status!);
}

describe('presigned downloads', () => {
  it('a NAR GET answers 302 to a presigned bucket URL after the slice check; a HEAD still answers itself', async () => {
    const [path] = await nixBuild(randomChainExpr(1, 5000));
    await push(path!);
    const reader = await server.readToken(['acme/*']);
    const narinfo = await (
      await fetch(`${server.url}/${hashPart(path!)}.narinfo`, {
        headers: { authorization: `Bearer ${reader}` },
      })
    ).text();
    const url = /^URL: (\S+)$/m.exec(narinfo)![1]!;

    const res = await rawRequest(server.url, 'GET', `/${url}`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(res.status).toBe(302);
    expect(res.headers['cache-control']).toBe('no-store');
    const location = new URL(res.headers.location!);
    expect(location.host).toMatch(/^localhost:\d+$/);
    expect(location.pathname).toMatch(/^\/sluice-t-\w+\/cache\/[0-9a-z]{52}\.nar\.zst$/);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('300');
    // The URL needs no credentials, and gives the NAR's bytes.
    const fromBucket = await fetch(location);
    expect(fromBucket.status).toBe(200);
    const head = await rawRequest(server.url, 'HEAD', `/${url}`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect([head.status, head.headers['content-length']]).toEqual([
      200,
      String((await fromBucket.arrayBuffer()).byteLength),
    ]);
    // No redirect for a reader who may not see it.
    const stranger = await server.readToken(['other/*']);
    const refused = await rawRequest(server.url, 'GET', `/${url}`, {
      headers: { authorization: `Bearer ${stranger}` },
    });
    expect(refused.status).toBe(404);
  });

  it('a presigned URL never outlives the token it was made for, in a redirect or a NAR link', async () => {
    const [path] = await nixBuild(randomChainExpr(1, 4000));
    await push(path!);
    const narinfo = await (
      await fetch(`${server.url}/${hashPart(path!)}.narinfo`, {
        headers: { authorization: `Bearer ${await server.readToken(['acme/*'])}` },
      })
    ).text();
    const url = /^URL: (\S+)$/m.exec(narinfo)![1]!;
    const lifetimes = async (token: string) => {
      const headers = { authorization: `Bearer ${token}` };
      const redirect = await rawRequest(server.url, 'GET', `/${url}`, { headers });
      const links = (await (
        await fetch(`${server.url}/_api/v1/nar-links`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ nars: [url] }),
        })
      ).json()) as { links: Record<string, string>; expires_in: number };
      const expires = (location: string | undefined) =>
        Number(new URL(location!).searchParams.get('X-Amz-Expires'));
      return [expires(redirect.headers.location), expires(links.links[url]), links.expires_in];
    };
    // A long-lived token: the redirect lives presign_ttl, a NAR link as long as its answer says.
    const [redirect, link, answer] = await lifetimes(await server.readToken(['acme/*'], 3600));
    expect([redirect, link]).toEqual([300, answer]);
    expect(answer).toBeGreaterThan(100);
    expect(answer).toBeLessThanOrEqual(120);
    // A token with 30 s left: neither URL works past it.
    const short = await lifetimes(await server.readToken(['acme/*'], 30));
    for (const seconds of short) {
      expect(seconds).toBeGreaterThan(25);
      expect(seconds).toBeLessThanOrEqual(30);
    }
  });

  it('Nix 2.8 substitutes a closure through the redirects, trusting only the server key', async () => {
    const [top] = await nixBuild(randomChainExpr(3, 3000));
    await push(top!);
    const before = narGetStatuses().length;
    const { closure } = await substituteFresh(server, top!, await server.readToken(['acme/*']));
    expect(closure).toHaveLength(3);
    expect(narGetStatuses().slice(before)).toEqual([302, 302, 302]);
  });

  it('through the Action’s proxy: job 2 substitutes through the redirects and builds nothing', async () => {
    const dist = buildActionBundles();
    const tag = salt();
    const expression = `let a = ${derivationExpr('sluice-presigned-a', tag)}; b = ${derivationExpr('sluice-presigned-b', tag, ['a'])}; in [ a b ]`;
    const inputs = { server: server.url, listen: '127.0.0.1:0', 'drain-timeout': '60' };
    const job1 = new Job({ dist, inputs, idTokenRequest: server.issuer.runner });
    expect((await job1.runMain()).exitCode).toBe(0);
    const built = await job1.nixBuild(expression);
    expect((await job1.runPost()).exitCode).toBe(0);

    await deletePaths(new Job({ dist, inputs: { server: server.url } }), [...built].reverse());
    const before = narGetStatuses().length;
    const linksBefore = narGetStatuses('nar-links', 'POST').length;
    const job2 = new Job({ dist, inputs, idTokenRequest: server.issuer.runner });
    expect((await job2.runMain()).exitCode).toBe(0);
    const out = await job2.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', expression]);
    expect(out.trim().split('\n')).toEqual(built);
    const post = await job2.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    // The proxy asked for the NARs' links once, and they were the bucket's presigned URLs: Nix
    // went there straight from the proxy's redirect, no NAR GET reached the server.
    expect(narGetStatuses('nar-links', 'POST').slice(linksBefore)).toEqual([200]);
    expect(narGetStatuses().slice(before)).toEqual([]);
  }, 240_000);
});

describe('cache headers', () => {
  it('NARs immutable (public without a token, private with one); narinfos for a minute', async () => {
    // Without presigned downloads, with a public slice: anonymous reads see it.
    const server = await startTestServer({
      yaml: 'slices:\n  - { name: acme/app, public: true, write: [{ repository: acme/app }] }\n',
    });
    const [path] = await nixBuild(randomChainExpr(1, 5000));
    const upload = await narUploadFor(path!);
    expect(await pushRaw(server.url, await server.ciToken(), upload)).toEqual([201, 201]);
    const reader = { authorization: `Bearer ${await server.readToken(['acme/*'])}` };
    const narinfoPath = `/${hashPart(path!)}.narinfo`;
    const anonymous = await rawRequest(server.url, 'GET', narinfoPath);
    const withToken = await rawRequest(server.url, 'GET', narinfoPath, { headers: reader });
    expect([anonymous.status, anonymous.headers['cache-control']]).toEqual([200, 'public, max-age=60']);
    expect([withToken.status, withToken.headers['cache-control']]).toEqual([200, 'private, max-age=60']);
    const url = /^URL: (\S+)$/m.exec(anonymous.text)![1]!;
    const narAnonymous = await rawRequest(server.url, 'HEAD', `/${url}`);
    const narWithToken = await rawRequest(server.url, 'HEAD', `/${url}`, { headers: reader });
    expect(narAnonymous.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(narWithToken.headers['cache-control']).toBe('private, max-age=31536000, immutable');
    await server.close();
  });
});
