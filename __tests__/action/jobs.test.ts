/**
 * End to end: the bundled main and post steps run as the runner runs them, with real Nix, the real
 * server and the real proxy daemon. Job 1 builds and pushes; job 2 on a store without those paths
 * substitutes everything and builds nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { isAlive } from '../../src/action/daemon-client.js';
import { salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startTestServer, type TestServer } from '../support/server.js';
import {
  deletePaths,
  derivationExpr,
  onServer,
  outPathsOf,
  pushedInBackground,
  startStaticUpstream,
  type StaticUpstream,
  warningsAbout,
} from './support.js';

let dist: string;
let server: TestServer;
let upstream: StaticUpstream;
const tag = salt();
// `a` and `b` (which refers to `a`) are ours to push; upstream serves `up`; `skip` matches push-filter.
const expression = `let
  a = ${derivationExpr('sluice-e2e-a', tag)};
  b = ${derivationExpr('sluice-e2e-b', tag, ['a'])};
  up = ${derivationExpr('sluice-e2e-up', tag)};
  skip = ${derivationExpr('sluice-e2e-skip', tag)};
in [ a b up skip ]`;
const pushable = `let
  a = ${derivationExpr('sluice-e2e-a', tag)};
  b = ${derivationExpr('sluice-e2e-b', tag, ['a'])};
in [ a b ]`;
let paths: { a: string; b: string; up: string; skip: string };

interface SavedDaemon {
  daemon?: { pid: number; logFile: string };
  stateDir?: string;
}

/** Everything a user could read: step logs (minus `::add-mask::` commands), summaries, the daemon log. */
function readable(job: Job): string {
  const logs = job.everything
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
  const { daemon } = job.savedState() as SavedDaemon;
  return `${logs}\n${daemon ? readFileSync(daemon.logFile, 'utf8') : ''}`;
}

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer();
  const probe = new Job({ dist, inputs: { server: 'http://127.0.0.1:1' } });
  const [a, b, up, skip] = await outPathsOf(probe, expression);
  paths = { a: a!, b: b!, up: up!, skip: skip! };
  upstream = await startStaticUpstream([paths.up]);
});
afterAll(async () => {
  await server?.close();
  await upstream?.close();
});

describe('two jobs through the Action', () => {
  const inputs = () => ({
    server: server.url,
    'upstream-caches': upstream.url,
    'push-filter': '-sluice-e2e-skip$',
    listen: '127.0.0.1:0',
    'drain-timeout': '60',
  });

  it('job 1 pushes exactly its new paths, none that upstream has or the filter excludes', async () => {
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([]);
    expect(main.outputs.substituter).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(job.exported.SLUICE_PROXY_URL).toBe(main.outputs.substituter);

    const built = await job.nixBuild(expression);
    expect(built).toEqual([paths.a, paths.b, paths.up, paths.skip]);

    // The post-build hook told the daemon, which pushes in the background, before any post step.
    expect(await pushedInBackground(server, job, [paths.a, paths.b])).toBe(true);

    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(warningsAbout(post.warnings, built)).toEqual([]);
    expect(await onServer(server, paths.a)).toBe(true);
    expect(await onServer(server, paths.b)).toBe(true);
    expect(await onServer(server, paths.up)).toBe(false);
    expect(await onServer(server, paths.skip)).toBe(false);
    // The store is shared with concurrently running tests: their new paths may be pushed too.
    expect(Number(post.outputs['pushed-paths'])).toBeGreaterThanOrEqual(2);
    expect(Number(post.outputs['pushed-bytes'])).toBeGreaterThan(0);
    expect(post.summary).toContain('Sluice cache');
    expect(post.summary).toContain('acme/app');
    // Nothing came from the cache: every path of the job was built here, and is pushed.
    expect(post.summary).toMatch(/\*\*0 of \d+ paths? from the cache\*\* \(0%\), 0 B\./);
    expect(post.summary).toMatch(
      /\*\*Pushed \d+ paths?\*\* \([\d.]+ (B|KiB|MiB)\) in [\d.]+ s; skipped \d+: .*1 on an upstream cache, 1 excluded by push-filter\./,
    );
    // MiB above: a concurrent test's paths (nar-dump.test.ts builds 3 MiB) can land in this job's store diff.
    // The largest pushed paths, largest first (the shared store's other new paths may be among them).
    const pushedList = /<summary>Largest paths<\/summary>.*<p>Pushed:<\/p><ul>(.*?)<\/ul>/s.exec(
      post.summary,
    )?.[1];
    const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2 } as Record<string, number>;
    const sizes = [...(pushedList ?? '').matchAll(/<li><code>[^<]+<\/code> ([\d.]+) (B|KiB|MiB)<\/li>/g)].map(
      (m) => Number(m[1]) * unit[m[2]!]!,
    );
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    expect(sizes.length).toBeLessThanOrEqual(10);
    expect(sizes).toEqual([...sizes].sort((x, y) => y - x));

    const { daemon, stateDir } = job.savedState() as SavedDaemon;
    expect(isAlive(daemon!.pid)).toBe(false);
    // The files that held the token and the proxy's secrets are gone (proxy-access.test.ts looks at all of RUNNER_TEMP).
    expect(existsSync(`${stateDir}/daemon.json`)).toBe(false);
    expect(job.secrets.size).toBeGreaterThanOrEqual(2); // the ID token and the cache token
    const text = readable(job);
    for (const secret of job.secrets) expect(text).not.toContain(secret);
    // Post took the Sluice block out of nix.conf again: the proxy is gone.
    const conf = readFileSync(`${job.machine.env.XDG_CONFIG_HOME}/nix/nix.conf`, 'utf8');
    expect(conf).not.toContain('sluice');
  }, 180_000);

  it('job 2, without those paths, substitutes everything and builds nothing', async () => {
    await deletePaths(new Job({ dist, inputs: { server: server.url } }), [
      paths.b,
      paths.a,
      paths.up,
      paths.skip,
    ]);
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });
    const logged = server.logs.length;
    expect((await job.runMain()).exitCode).toBe(0);
    // --max-jobs 0: Nix fails rather than build anything.
    const out = await job.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', pushable]);
    expect(out.trim().split('\n')).toEqual([paths.a, paths.b]);

    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    // Distinct paths, though Nix looks each up more than once (this test's disk-cache TTLs are 0).
    expect(post.outputs.hits).toBe('2');
    expect(post.outputs.misses).toBe('0');
    // (pushed-paths is not asserted: concurrently running tests' new store paths show up in the diff.)
    expect(post.summary).toMatch(/\*\*2 of 2 paths from the cache\*\* \(100%\), \d+ B\./);
    const downloaded = /<p>Downloaded from the cache:<\/p><ul>(.*?)<\/ul>/s.exec(post.summary)?.[1];
    expect(downloaded?.match(/<li>/g)).toHaveLength(2);
    expect(downloaded).toMatch(/<li><code>sluice-e2e-a<\/code> \d+ B<\/li>/);
    expect(downloaded).toMatch(/<li><code>sluice-e2e-b<\/code> \d+ B<\/li>/);
    const { daemon } = job.savedState() as SavedDaemon;
    expect(isAlive(daemon!.pid)).toBe(false);
    // The proxy redirected Nix's NAR GETs to links the server signed; Nix fetched the bytes from
    // the server itself. No link is in any log a user can read (Nix shows them only at -vvvvv).
    const requests = server.logs
      .slice(logged)
      .map((line) => JSON.parse(line) as { msg?: string; route?: string; method?: string; status?: number })
      .filter((entry) => entry.msg === 'request')
      .map((entry) => `${entry.method} ${entry.route} ${entry.status}`);
    expect(requests.filter((r) => r.includes('nar-links'))).toEqual(['POST nar-links 200']);
    expect(requests.filter((r) => r.startsWith('GET nar '))).toEqual(['GET nar 200', 'GET nar 200']);
    expect(readable(job)).not.toMatch(/[?&]sig=/);
  }, 180_000);
});
