/**
 * The bundled steps, run as the runner runs them, where the cache cannot be used: the job stays
 * green (unless `strict`), and says why and what to do.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { buildActionBundles, Job } from '../support/runner.js';

let issuer: OidcIssuer;
let dist: string;
let deadServer: string;

/** A URL nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  dist = buildActionBundles();
  issuer = await startOidcIssuer();
  deadServer = await closedPortUrl();
});
afterAll(async () => {
  await issuer.close();
});

describe('the Action failing open', () => {
  it('fails the step for misuse: an invalid input is named with what it accepts', async () => {
    const job = new Job({ dist, inputs: { server: deadServer, compression: 'gzip' } });
    const main = await job.runMain();
    expect(main.exitCode).toBe(1);
    expect(main.errors.join('\n')).toContain(
      "Input 'compression' must be one of 'zstd', 'xz', 'none'; got 'gzip'",
    );
  });

  it('without Nix: one clear warning and nothing else', async () => {
    const job = new Job({ dist, inputs: { server: deadServer }, env: { PATH: '/nonexistent' } });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([expect.stringContaining('found no `nix` on PATH')]);
    expect(job.exported).toEqual({});
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toBe('');
    expect(post.warnings).toEqual([]);
  });

  it('without an ID token (a fork PR): green, a notice naming the permission, no cache', async () => {
    const job = new Job({ dist, inputs: { server: deadServer } });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.notices.join('\n')).toContain('permissions: id-token: write');
    expect(job.exported).toEqual({});
    expect(main.outputs).toEqual({});
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('Cache: not used');
    expect(post.summary).toContain('id-token: write');
  });

  it('with the server down: green, the failure in a warning and the summary', async () => {
    const job = new Job({ dist, inputs: { server: deadServer }, idTokenRequest: issuer.runner });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings.join('\n')).toMatch(/server is unavailable \(could not reach .*ECONNREFUSED/);
    expect(issuer.runner.audiences.at(-1)).toBe('sluice');
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('What went wrong');
    expect(post.summary).toContain('server is unavailable');
  });

  it('with `summary: false`: the warning still, no job summary', async () => {
    const job = new Job({
      dist,
      inputs: { server: deadServer, summary: 'false' },
      idTokenRequest: issuer.runner,
    });
    expect((await job.runMain()).warnings.join('\n')).toContain('server is unavailable');
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toBe('');
  });

  it('with the server down and `strict: true`: the job fails', async () => {
    const job = new Job({
      dist,
      inputs: { server: deadServer, strict: 'true' },
      idTokenRequest: issuer.runner,
    });
    const main = await job.runMain();
    expect(main.exitCode).toBe(1);
    expect(main.errors.join('\n')).toContain('server is unavailable');
    const post = await job.runPost();
    expect(post.summary).toContain('server is unavailable');
  });
});
