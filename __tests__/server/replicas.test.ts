/**
 * Two stateless replicas on one bucket (Ceph RGW) and one database (PostgreSQL), sharing key
 * files: what one accepts the other serves at once, to real Nix and through the Action's proxy, and
 * the same path pushed through both at the same moment is stored once.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { nix, makeNixMachine, nixBuild, randomChainExpr, salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  writeNetrc,
  type TestServer,
} from '../support/server.js';
import { bucketContents, queryDatabase, sharedBackends, type SharedBackends } from '../support/backends.js';
import { deletePaths, derivationExpr, onServer, outPathsOf } from '../action/support.js';

let shared: SharedBackends;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  shared = await sharedBackends();
  [a, b] = await Promise.all([
    startTestServer({ yaml: shared.yaml }),
    startTestServer({ yaml: shared.yaml }),
  ]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

async function closureOf(path: string): Promise<string[]> {
  return (await nix('nix-store', ['-qR', path])).trim().split('\n').sort();
}

const narinfoRows = async (hashPart: string) =>
  (
    await queryDatabase<{ n: string }>(
      shared.databaseUrl,
      'SELECT count(*) AS n FROM narinfos WHERE hash_part = $1',
      [hashPart],
    )
  )[0]!.n;

describe('two replicas on S3 + PostgreSQL', () => {
  it('nix copy through one, a fresh store substitutes through the other trusting only the shared key', async () => {
    expect(b.publicKey).toBe(a.publicKey);
    const pusher = makeNixMachine();
    const netrc = writeNetrc(pusher.dir, await a.ciToken());
    // Three paths, one of them larger than a part (5 MiB), so one NAR goes multipart.
    const [top] = await nixBuild(randomChainExpr(3, 6 * 1024 * 1024), pusher);
    const closure = await closureOf(top!);
    await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${a.url}?compression=zstd`, top!], {
      machine: pusher,
    });

    const {
      machine,
      store,
      closure: substituted,
    } = await substituteFresh(b, top!, await b.readToken(['acme/*']));
    expect(substituted).toEqual(closure);
    for (const path of closure) {
      const [mine, theirs] = await Promise.all([
        nix('nix-store', ['--dump', path], { maxBuffer: 1 << 26 }),
        nix('nix-store', ['--store', store, '--dump', path], { machine, maxBuffer: 1 << 26 }),
      ]);
      expect(theirs === mine).toBe(true);
    }
    // The NARs are in the bucket under the prefix, and no upload was left unfinished.
    const { objects, uploads } = await bucketContents(shared.bucket);
    expect(objects.length).toBeGreaterThanOrEqual(3);
    for (const key of objects) expect(key).toMatch(/^cache\/[0-9a-z]{52}\.nar\.zst$/);
    expect(uploads).toEqual([]);
  });

  it('the same path pushed through both at the same moment: both succeed, one object, one narinfo, it verifies', async () => {
    const [path] = await nixBuild(randomChainExpr(1, 7 * 1024 * 1024));
    const upload = await narUploadFor(path!);
    const [tokenA, tokenB] = await Promise.all([a.ciToken(), b.ciToken()]);
    const statuses = await Promise.all([pushRaw(a.url, tokenA, upload), pushRaw(b.url, tokenB, upload)]);
    for (const [nar, narinfo] of statuses) {
      expect([200, 201]).toContain(nar);
      expect([200, 201]).toContain(narinfo);
    }
    const { objects, uploads } = await bucketContents(shared.bucket);
    expect(objects.filter((key) => key === `cache/${upload.narUrl.slice('nar/'.length)}`)).toHaveLength(1);
    expect(uploads).toEqual([]);
    expect(await narinfoRows(upload.hashPart)).toBe('1');
    const { closure } = await substituteFresh(a, path!, await a.readToken(['acme/*']));
    expect(closure).toEqual([path]);
  });
});

describe('two replicas through the Action', () => {
  it('job 1 pushes through one replica, job 2 substitutes everything through the other and builds nothing', async () => {
    const dist = buildActionBundles();
    const tag = salt();
    const expression = `let a = ${derivationExpr('sluice-replica-a', tag)}; b = ${derivationExpr('sluice-replica-b', tag, ['a'])}; in [ a b ]`;
    const inputs = (server: TestServer) => ({
      server: server.url,
      listen: '127.0.0.1:0',
      'drain-timeout': '60',
    });

    const job1 = new Job({ dist, inputs: inputs(a), idTokenRequest: a.issuer.runner });
    expect((await job1.runMain()).exitCode).toBe(0);
    const built = await job1.nixBuild(expression);
    const post1 = await job1.runPost();
    expect(post1.exitCode).toBe(0);
    for (const path of built) expect(await onServer(b, path)).toBe(true);

    await deletePaths(new Job({ dist, inputs: { server: b.url } }), [...built].reverse());
    const job2 = new Job({ dist, inputs: inputs(b), idTokenRequest: b.issuer.runner });
    expect((await job2.runMain()).exitCode).toBe(0);
    // --max-jobs 0: Nix fails rather than build anything.
    const out = await job2.run('nix-build', ['--no-out-link', '--max-jobs', '0', '--expr', expression]);
    expect(out.trim().split('\n')).toEqual(built);
    const post2 = await job2.runPost();
    expect(post2.exitCode).toBe(0);
    expect(post2.outputs.misses).toBe('0');
    expect(await outPathsOf(job2, expression)).toEqual(built);
  }, 240_000);
});
