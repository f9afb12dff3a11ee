/**
 * GitHub cache mode when things go wrong: the cache service answering 429 or 500, Azurite (the
 * blob store) down, a corrupted pack. The job stays green and the summary says what happened;
 * `strict: true` turns each red. And 2,000 paths in one pack: still three calls, no 429.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addTinyPaths, salt } from '../support/nix.js';
import { azuritePort, startAzurite, type Azurite } from '../support/azurite.js';
import { NEW_ENTRIES_PER_MINUTE, startCacheService, type CacheService } from '../support/cache-service.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { deletePaths, derivationExpr } from './support.js';

const AZURITE_PORT = azuritePort(1);
let dist: string;
let azurite: Azurite;
let service: CacheService;
/** The service's clock: the 200-per-minute cap is checked against it. */
let clock = Date.now();

function job(ref: string, inputs: Record<string, string> = {}): { job: Job; token: string } {
  const token = service.tokenFor({ ref, readRefs: ref === 'refs/heads/main' ? [] : ['refs/heads/main'] });
  return {
    job: new Job({
      dist,
      inputs: { listen: '127.0.0.1:0', 'upstream-caches': '', ...inputs },
      github: { ref, cache: { url: service.url, token } },
    }),
    token,
  };
}

/** A fresh two-path closure per test; each test uses its own ref, so packs don't mix. */
function closure(): string {
  const tag = salt();
  return `let a = ${derivationExpr('sluice-ghf-a', tag)}; b = ${derivationExpr('sluice-ghf-b', tag, ['a'])}; in [ a b ]`;
}

async function buildAndFinish(ref: string, inputs: Record<string, string> = {}) {
  const { job: j, token } = job(ref, inputs);
  const main = await j.runMain();
  const expression = closure();
  const built = await j.nixBuild(expression);
  const post = await j.runPost();
  return { main, post, built, token, job: j, expression };
}

beforeAll(async () => {
  dist = buildActionBundles();
  azurite = await startAzurite(AZURITE_PORT);
  service = await startCacheService(azurite, () => clock);
}, 600_000);
afterAll(async () => {
  await service?.close();
  await azurite?.close();
});

describe('cache service failures', () => {
  it('no cache service at all (not an Actions runner): green with a warning that says so', async () => {
    const j = new Job({ dist, inputs: { listen: '127.0.0.1:0' }, github: { ref: 'refs/heads/main' } });
    const main = await j.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings.join('\n')).toMatch(/GitHub Actions cache is not available .*ACTIONS_RUNTIME_TOKEN/);
    expect(main.outputs.substituter).toBeUndefined();
    expect((await j.runPost()).exitCode).toBe(0);
  });

  it('a 429 on saving: green, and the summary says the pack was not saved and why', async () => {
    service.fail('CreateCacheEntry', 429);
    try {
      const { main, post, token } = await buildAndFinish('refs/heads/rate-limited');
      expect(main.exitCode).toBe(0);
      expect(post.exitCode).toBe(0);
      expect(post.warnings.join('\n')).toMatch(/could not save the job's pack.*429/);
      expect(post.summary).toMatch(/No pack saved: .*429/);
      expect(post.outputs['pack-saved-key']).toBe('');
      expect(service.callsOf(token).map((c) => c.status)).toEqual([200, 429]);

      const strict = await buildAndFinish('refs/heads/rate-limited-strict', { strict: 'true' });
      expect(strict.post.exitCode).toBe(1);
      expect(strict.post.errors.join('\n')).toMatch(/429/);
    } finally {
      service.heal();
    }
  }, 240_000);

  it('a 500 on restoring: green, Nix builds, the summary says the restore failed', async () => {
    service.fail('GetCacheEntryDownloadURL', 500);
    try {
      const { post, built } = await buildAndFinish('refs/heads/server-error');
      expect(built).toHaveLength(2);
      expect(post.exitCode).toBe(0);
      expect(post.warnings.join('\n')).toMatch(/could not restore a pack .*500/);
      expect(post.summary).toMatch(/Pack restored: failed: .*500/);
      // Saving is a separate call, which works: the job's pack is saved all the same.
      expect(post.outputs['pack-saved-key']).not.toBe('');
    } finally {
      service.heal();
    }
  }, 240_000);

  it('Azurite down: green with the reason in the summary; red with strict', async () => {
    await azurite.stop();
    try {
      const { post, built } = await buildAndFinish('refs/heads/blob-down');
      expect(built).toHaveLength(2);
      expect(post.exitCode).toBe(0);
      expect(post.summary).toMatch(/No pack saved: the GitHub Actions cache did not take it/);
      expect(post.warnings.join('\n')).toMatch(/could not save the job's pack/);
      const strict = await buildAndFinish('refs/heads/blob-down-strict', { strict: 'true' });
      expect(strict.post.exitCode).toBe(1);
    } finally {
      await azurite.start();
    }
  }, 400_000);
});

describe('a corrupted pack', () => {
  it('is reported and skipped, never served: Nix builds instead; strict makes it red', async () => {
    const ref = 'refs/heads/corrupt';
    const first = await buildAndFinish(ref);
    const key = first.post.outputs['pack-saved-key']!;
    expect(key).not.toBe('');
    const entry = service.entries.find((e) => e.key === key)!;
    await service.writeBlob(entry, corruptFirstNar(await service.readBlob(entry)));

    await deletePaths(first.job, [...first.built].reverse());
    const { job: j } = job(ref);
    await j.runMain();
    // Not --max-jobs 0: the pack fails its check, so Nix must build.
    expect(await j.nixBuild(first.expression)).toEqual(first.built);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.outputs['pack-restored-key']).toBe(key);
    expect(post.outputs['pack-used-paths']).toBe('0');
    expect(post.warnings.join('\n')).toMatch(/is corrupt/);
    expect(post.summary).toMatch(/corrupt/);

    // This job built the paths, so it saved a sound pack of its own, newer than the corrupt one: corrupt
    // that one too, so that the strict job below restores a corrupt pack whichever it picks.
    const resaved = service.entries.find((e) => e.key === post.outputs['pack-saved-key']);
    if (resaved) await service.writeBlob(resaved, corruptFirstNar(await service.readBlob(resaved)));

    await deletePaths(j, [...first.built].reverse());
    const { job: strict } = job(ref, { strict: 'true' });
    await strict.runMain();
    expect(await strict.nixBuild(first.expression)).toEqual(first.built);
    const strictPost = await strict.runPost();
    expect(strictPost.exitCode).toBe(1);
    expect(strictPost.errors.join('\n')).toMatch(/is corrupt/);
  }, 300_000);
});

/** Unpacks @actions/cache's tar.zst, flips a byte in the first NAR, packs it again. */
function corruptFirstNar(archive: Buffer): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-corrupt-'));
  try {
    writeFileSync(join(dir, 'in.tzst'), archive);
    execFileSync('tar', ['--zstd', '-xf', join(dir, 'in.tzst'), '-C', dir]);
    const index = JSON.parse(readFileSync(join(dir, 'sluice-pack/index.json'), 'utf8')) as {
      entries: { size: number }[];
    };
    const nars = readFileSync(join(dir, 'sluice-pack/nars.zst'));
    nars[Math.floor(index.entries[0]!.size / 2)]! ^= 0xff;
    writeFileSync(join(dir, 'sluice-pack/nars.zst'), nars);
    execFileSync('tar', [
      '--zstd',
      '-cf',
      join(dir, 'out.tzst'),
      '-C',
      dir,
      'sluice-pack/index.json',
      'sluice-pack/nars.zst',
    ]);
    return readFileSync(join(dir, 'out.tzst'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('many paths, one pack', () => {
  it('the cap is enforced: the 201st new entry within a minute is answered 429', async () => {
    const token = service.tokenFor({ ref: 'refs/heads/cap', readRefs: [] });
    clock += 3600_000; // a fresh minute, past every earlier test's entries
    const create = (i: number) =>
      fetch(`${service.url}twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ key: `k${i}`, version: 'v' }),
      });
    for (let i = 0; i < NEW_ENTRIES_PER_MINUTE; i++) expect((await create(i)).status).toBe(200);
    expect((await create(NEW_ENTRIES_PER_MINUTE)).status).toBe(429);
    clock += 61_000;
  });

  it('2,000 small paths: one pack, at most three calls per job, no 429', async () => {
    clock += 3600_000;
    const ref = 'refs/heads/many';
    const { job: j, token } = job(ref);
    await j.runMain();
    const tiny = await addTinyPaths(2000, `sluice-ghm-${salt()}`, j.machine);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(Number(post.outputs['pushed-paths'])).toBeGreaterThanOrEqual(2000);
    expect(service.callsOf(token).map((c) => c.status)).toEqual([200, 200, 200]);

    await deletePaths(j, tiny);
    const { job: next, token: nextToken } = job(ref);
    await next.runMain();
    await next.run('nix-store', ['--realise', '--max-jobs', '0', ...tiny]);
    const nextPost = await next.runPost();
    expect(nextPost.exitCode).toBe(0);
    expect(nextPost.warnings).toEqual([]);
    expect(Number(nextPost.outputs['pack-used-paths'])).toBe(2000);
    expect(service.callsOf(nextToken).length).toBeLessThanOrEqual(3);
    expect([...service.callsOf(token), ...service.callsOf(nextToken)].some((c) => c.status === 429)).toBe(
      false,
    );
  }, 400_000);
});
