/**
 * End to end in GitHub cache mode (no server): the bundled steps through the runner harness, real
 * Nix, the Actions cache service stand-in and the real Azurite behind its signed URLs. Job 1 on
 * main builds and saves one pack; job 2 builds nothing and substitutes everything from it; job 3
 * adds a derivation and saves the union; job 4, a pull request, reads main's pack and saves to
 * its own scope, which a later main job does not see. At most three cache calls per job.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { salt } from '../support/nix.js';
import { azuritePort, startAzurite, type Azurite } from '../support/azurite.js';
import { startCacheService, type CacheService } from '../support/cache-service.js';
import { buildActionBundles, Job, type GitHubContext } from '../support/runner.js';
import { deletePaths, derivationExpr, outPathsOf } from './support.js';

const AZURITE_PORT = azuritePort(0);
let dist: string;
let azurite: Azurite;
let service: CacheService;
const tag = salt();
const drv = (name: string, deps: string[] = []) => derivationExpr(`sluice-gha-${name}`, tag, deps);
const closure = `let a = ${drv('a')}; b = ${drv('b', ['a'])}; in [ a b ]`;
const withC = `let a = ${drv('a')}; b = ${drv('b', ['a'])}; c = ${drv('c', ['b'])}; in [ a b c ]`;
const prOnly = `let a = ${drv('a')}; pr = ${drv('pr', ['a'])}; in [ a pr ]`;
let paths: { a: string; b: string; c: string; pr: string };

const MAIN = { ref: 'refs/heads/main' };
/** Every store path but this file's derivations' outputs. */
const OTHERS = '^(?!/nix/store/[0-9a-z]{32}-sluice-gha-)';
const PR = { ref: 'refs/pull/4/merge', baseRef: 'main' };

function job(
  github: Omit<GitHubContext, 'cache'>,
  inputs: Record<string, string> = {},
): { job: Job; token: string } {
  const readRefs = [github.baseRef ? `refs/heads/${github.baseRef}` : '', 'refs/heads/main'].filter(
    (r) => r && r !== github.ref,
  );
  const token = service.tokenFor({ ref: github.ref, readRefs });
  const j = new Job({
    dist,
    inputs: {
      listen: '127.0.0.1:0',
      'upstream-caches': '',
      'drain-timeout': '120',
      // Tests running at the same time add paths to the shared store: packs hold only this file's.
      'push-filter': OTHERS,
      ...inputs,
    },
    github: { ...github, cache: { url: service.url, token } },
  });
  return { job: j, token };
}

async function forget(...storePaths: string[]): Promise<void> {
  await deletePaths(new Job({ dist, inputs: {} }), storePaths);
}

beforeAll(async () => {
  dist = buildActionBundles();
  azurite = await startAzurite(AZURITE_PORT);
  service = await startCacheService(azurite);
  const [a, b, c] = await outPathsOf(new Job({ dist, inputs: {} }), withC);
  const [, pr] = await outPathsOf(new Job({ dist, inputs: {} }), prOnly);
  paths = { a: a!, b: b!, c: c!, pr: pr! };
}, 600_000);
afterAll(async () => {
  await service?.close();
  await azurite?.close();
});

describe('GitHub cache mode, job after job', () => {
  it('job 1 on main builds a closure and saves one pack', async () => {
    const { job: j, token } = job(MAIN);
    const main = await j.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([]);
    expect(await j.nixBuild(closure)).toEqual([paths.a, paths.b]);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(post.outputs['pack-saved-key']).toMatch(/^sluice-pack-v1:Linux:X64::refs\/heads\/main:/);
    expect(post.outputs['pushed-paths']).toBe('2');
    expect(post.summary).toContain('Pack saved');
    // The runtime token appears in no log, summary or daemon log; the config holding it (and
    // the job's signing key) is gone.
    const { daemon, stateDir } = j.savedState() as { daemon: { logFile: string }; stateDir: string };
    const readable = `${j.everything}\n${readFileSync(daemon.logFile, 'utf8')}`;
    expect(readable).toContain('pack written');
    expect(readable).not.toContain(token);
    expect(existsSync(join(stateDir, 'daemon.json'))).toBe(false);
    const calls = service.callsOf(token).map((c) => `${c.method} ${c.status}`);
    expect(calls).toEqual([
      'GetCacheEntryDownloadURL 200',
      'CreateCacheEntry 200',
      'FinalizeCacheEntryUpload 200',
    ]);
  }, 240_000);

  it('job 2, on a store without them, substitutes everything from the pack and builds nothing', async () => {
    await forget(paths.b, paths.a);
    const { job: j, token } = job(MAIN);
    expect((await j.runMain()).exitCode).toBe(0);
    const out = await j.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', closure]);
    expect(out.trim().split('\n')).toEqual([paths.a, paths.b]);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(post.outputs['pack-used-paths']).toBe('2');
    // Counted in distinct paths as with a server: both found in the pack, both downloaded.
    expect([post.outputs.hits, post.outputs.misses]).toEqual(['2', '0']);
    expect(post.summary).toContain('**2 of 2 paths from the cache** (100%)');
    expect(post.outputs['pack-restored-key']).toMatch(/refs\/heads\/main:/);
    // It built nothing: no new pack, and the summary says why.
    expect(post.outputs['pack-saved-key']).toBe('');
    expect(post.summary).toContain('No pack saved: the job built nothing new');
    expect(post.summary).toContain('Pack restored: sluice-pack-v1\\:Linux');
    // Read out of the archive while it downloaded, or, when this 270-byte download was over and
    // extracted before the daemon saw it (a busy machine), from what @actions/cache extracted:
    // gha-cache-restore.test.ts paces a download to check the streaming itself.
    expect(post.summary).toMatch(
      /: 2 paths, [^,]+, (index read after [\d.]+ s \(streamed\), )?restore done after [\d.]+ s/,
    );
    // At most three calls; the restore is one of them.
    expect(service.callsOf(token).map((c) => c.method)).toEqual(['GetCacheEntryDownloadURL']);
  }, 240_000);

  let job3Key = '';
  it('job 3 builds one more derivation on top and saves the union it needs', async () => {
    await forget(paths.b, paths.a);
    const { job: j, token } = job(MAIN);
    expect((await j.runMain()).exitCode).toBe(0);
    expect(await j.nixBuild(withC)).toEqual([paths.a, paths.b, paths.c]);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    // The union: the two it took from job 1's pack and the one it built.
    expect(post.outputs['pack-used-paths']).toBe('2');
    expect(post.outputs['pushed-paths']).toBe('3');
    job3Key = post.outputs['pack-saved-key']!;
    expect(job3Key).toMatch(/refs\/heads\/main:/);
    expect(service.callsOf(token).length).toBe(3);
    // The union: a fresh store gets all three from this pack alone, building nothing.
    await forget(paths.c, paths.b, paths.a);
    const { job: next } = job(MAIN);
    await next.runMain();
    const out = await next.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', withC]);
    expect(out.trim().split('\n')).toEqual([paths.a, paths.b, paths.c]);
    const nextPost = await next.runPost();
    expect(nextPost.outputs['pack-restored-key']).toBe(job3Key);
  }, 300_000);

  it("job 4, a pull request, reads main's pack and saves to its own scope, unseen by main", async () => {
    await forget(paths.c, paths.b, paths.a);
    const { job: pr, token } = job(PR);
    expect((await pr.runMain()).exitCode).toBe(0);
    expect(await pr.nixBuild(prOnly)).toEqual([paths.a, paths.pr]);
    const post = await pr.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.outputs['pack-restored-key']).toBe(job3Key);
    expect(post.outputs['pushed-paths']).toBe('2');
    const prKey = post.outputs['pack-saved-key']!;
    expect(prKey).toMatch(/refs\/pull\/4\/merge:/);
    expect(service.entries.find((e) => e.key === prKey)?.ref).toBe('refs/pull/4/merge');
    expect(service.callsOf(token).length).toBe(3);

    // A later main job restores main's newest pack, not the pull request's, and cannot get `pr`.
    await forget(paths.pr, paths.a);
    const { job: later } = job(MAIN);
    await later.runMain();
    await expect(
      later.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', prOnly]),
    ).rejects.toThrow();
    const laterPost = await later.runPost();
    expect(laterPost.outputs['pack-restored-key']).toMatch(/refs\/heads\/main:/);
  }, 300_000);
});

describe('`push: false` in GitHub cache mode', () => {
  it("restores and serves main's pack, saves none, and the summary says why", async () => {
    await forget(paths.a);
    const noPush = `let a = ${drv('a')}; np = ${drv('no-push', ['a'])}; in [ a np ]`;
    const { job: j, token } = job({ ref: 'refs/heads/no-push' }, { push: 'false' });
    expect((await j.runMain()).exitCode).toBe(0);
    const [a, np] = await j.nixBuild(noPush);
    expect(a).toBe(paths.a);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    // `a` came from main's pack; `np` was built, and still nothing is saved.
    expect(post.outputs['pack-restored-key']).toMatch(/refs\/heads\/main:/);
    expect(post.outputs['pack-used-paths']).toBe('1');
    expect(post.outputs['pack-saved-key']).toBe('');
    expect(post.outputs['pushed-paths']).toBe('0');
    expect(post.summary).toContain('No pack saved: the `push` input is `false`.');
    expect(service.callsOf(token).map((c) => c.method)).toEqual(['GetCacheEntryDownloadURL']);
    expect(service.entries.some((e) => e.ref === 'refs/heads/no-push')).toBe(false);
    await forget(np!, paths.a);
  }, 240_000);
});
