/**
 * End to end, a fork's pull request against a server with a public slice: the job gets no ID
 * token, the health document says `public_reads: true`, and the proxy runs anonymously. It reads
 * what the public slice holds, nothing of the private one, and pushes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { narUploadFor, pushRaw, startTestServer, storedState, type TestServer } from '../support/server.js';
import { deletePaths, derivationExpr, hashPart, onServer, outPathsOf } from './support.js';

let dist: string;
let server: TestServer;
const tag = salt();
// `pub` goes into the public slice oss/tool, `priv` into the private slice acme/app.
const pubExpr = derivationExpr('sluice-e2e-public', tag);
const privExpr = derivationExpr('sluice-e2e-private', tag);
let paths: { pub: string; priv: string };

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer({
    yaml: `slices:
  - name: oss/tool
    public: true
    write:
      - { repository: oss/tool, event_name: push }
  - name: acme/app
    write:
      - { repository: acme/app, event_name: push }
`,
  });
  const probe = new Job({ dist, inputs: { server: 'http://127.0.0.1:1' } });
  const [pub] = await outPathsOf(probe, pubExpr);
  const [priv] = await outPathsOf(probe, privExpr);
  paths = { pub: pub!, priv: priv! };
});
afterAll(async () => {
  server?.issuer.runner.setJobClaims({});
  server?.issuer.runner.refuse(null);
  await server?.close();
});

const inputs = () => ({
  server: server.url,
  listen: '127.0.0.1:0',
  'upstream-caches': '',
  'drain-timeout': '60',
});

describe('a fork PR reading a public slice anonymously', () => {
  it('a push of oss/tool puts its build into the public slice', async () => {
    server.issuer.runner.setJobClaims({ repository: 'oss/tool', repository_id: '91011' });
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([]);
    expect(await job.nixBuild(pubExpr)).toEqual([paths.pub]);
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('Slice written: `oss/tool`');
    expect(await onServer(server, paths.pub)).toBe(true);

    // The private slice gets its path from acme/app's own CI token (built outside any job).
    await new Job({ dist, inputs: inputs() }).nixBuild(privExpr);
    const [narStatus, narinfoStatus] = await pushRaw(
      server.url,
      await server.ciToken(),
      await narUploadFor(paths.priv),
    );
    expect([narStatus, narinfoStatus]).toEqual([201, 201]);
    // Without a token the server serves the public slice and nothing else.
    expect((await fetch(`${server.url}/${hashPart(paths.pub)}.narinfo`)).status).toBe(200);
    expect((await fetch(`${server.url}/${hashPart(paths.priv)}.narinfo`)).status).toBe(404);
  }, 180_000);

  it('the fork job substitutes the public path, builds the private one, pushes nothing, stays green', async () => {
    await deletePaths(new Job({ dist, inputs: inputs() }), [paths.pub, paths.priv]);
    const before = storedState(server.dataDir);
    server.issuer.runner.setJobClaims({ repository: 'someone/tool-fork', event_name: 'pull_request' });
    server.issuer.runner.refuse('Can not issue ID tokens for pull requests from forks');
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });

    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([]);
    expect(main.notices.join('\n')).toContain('`permissions: id-token: write`');
    expect(main.log).toContain('The server serves the cache anonymously');
    expect(main.outputs.substituter).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(job.exported.SLUICE_PROXY_URL).toBe(main.outputs.substituter);
    expect(job.secrets.size).toBe(2); // the proxy's two per-job secrets; no ID token, no cache token

    // --max-jobs 0: Nix fails rather than build, so the public path must come from the cache.
    const out = await job.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', pubExpr]);
    expect(out.trim()).toBe(paths.pub);
    // The private path is not readable anonymously: a miss, so Nix has to build it here.
    await expect(
      job.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', privExpr]),
    ).rejects.toThrow();
    expect(await job.nixBuild(privExpr)).toEqual([paths.priv]);

    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(Number(post.outputs.hits)).toBeGreaterThanOrEqual(1);
    expect(Number(post.outputs.misses)).toBeGreaterThanOrEqual(1);
    expect(post.outputs['pushed-paths']).toBe('0');
    expect(post.outputs['pushed-bytes']).toBe('0');
    expect(post.summary).toContain('Cache: read only, anonymously (no OIDC token).');
    expect(post.summary).toContain('Slice written: none.');
    expect(post.summary).toContain('id-token: write');
    // The server holds exactly what it held before the fork's job.
    expect(storedState(server.dataDir)).toEqual(before);
  }, 180_000);
});
