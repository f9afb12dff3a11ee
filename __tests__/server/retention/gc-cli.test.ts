/**
 * `sluice gc --dry-run` changes nothing and prints exactly what the real `sluice gc` then removes;
 * `sluice slices` and `sluice pin` on the same data directory. The CLI runs as its own process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addTinyPaths, nixBuild, randomChainExpr } from '../../support/nix.js';
import { DAY, TestClock, nixCopy, readNarInfo, sliceEntries } from '../../support/retention.js';
import {
  narUploadFor,
  spawnCli,
  startTestServer,
  storedState,
  type TestServer,
} from '../../support/server.js';

const YAML = 'retention: { max_age: 30d }\n';
const clock = new TestClock(Date.now() - 40 * DAY);
let server: TestServer;
let configFile: string;

beforeAll(async () => {
  server = await startTestServer({ clock: clock.now, yaml: YAML });
  configFile = join(mkdtempSync(join(tmpdir(), 'sluice-gc-cli-')), 'sluice.yml');
  writeFileSync(configFile, YAML);
});
afterAll(async () => {
  await server?.close();
});

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli([...args, '--data', server.dataDir, '--config', configFile], { cwd: tmpdir() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

const removals = (output: string) => output.split('\n').filter((line) => line.startsWith('  remove '));

describe('sluice gc', () => {
  it('--dry-run changes nothing and prints exactly what the real run removes', async () => {
    const token = await server.ciToken();
    const [chainTop] = await nixBuild(randomChainExpr(3, 500));
    const [recent, orphan] = await addTinyPaths(2, 'gc-cli');
    await nixCopy(server.url, token, [chainTop as string, recent as string]);
    const orphanUpload = await narUploadFor(orphan as string);
    const put = await fetch(`${server.url}/${orphanUpload.narUrl}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}` },
      body: new Uint8Array(orphanUpload.nar),
    });
    expect(put.status).toBe(201);
    clock.set(Date.now() - DAY);
    expect(await readNarInfo(server.url, token, recent as string)).toBe(200);
    clock.set(Date.now());
    // The NAR files were written "40 days ago" too (the CLI ages them by their mtime as well).
    const nars = join(server.dataDir, 'nars');
    for (const file of readdirSync(nars))
      utimesSync(join(nars, file), new Date(clock.time - 40 * DAY), new Date(clock.time - 40 * DAY));

    const before = {
      state: storedState(server.dataDir),
      entries: await sliceEntries(server, 'acme/app'),
    };
    const dry = await cli(['gc', '--dry-run']);
    expect(dry).toEqual({ code: 0, stdout: expect.stringContaining('dry run'), stderr: '' });
    expect({
      state: storedState(server.dataDir),
      entries: await sliceEntries(server, 'acme/app'),
    }).toEqual(before);

    const real = await cli(['gc']);
    expect(real.code).toBe(0);
    expect(removals(real.stdout)).toEqual(removals(dry.stdout));
    // Three chain paths for age, their three NAR files no narinfo uses now, one orphan upload.
    expect(removals(real.stdout).filter((line) => line.includes('(age,'))).toHaveLength(3);
    expect(removals(real.stdout).filter((line) => line.includes('(unused,'))).toHaveLength(3);
    expect(removals(real.stdout).filter((line) => line.includes('(orphan,'))).toHaveLength(1);
    expect((await sliceEntries(server, 'acme/app')).map((entry) => entry.storePath)).toEqual([recent]);
    expect(storedState(server.dataDir).files).toHaveLength(1);
    // A second dry run finds nothing left to remove.
    expect(removals((await cli(['gc', '--dry-run'])).stdout)).toEqual([]);
  });

  it('sluice pin add/list/rm and sluice slices', async () => {
    const token = await server.ciToken();
    const [path] = await addTinyPaths(1, 'gc-pin');
    await nixCopy(server.url, token, [path as string]);
    expect(await cli(['pin', 'add', 'acme/app', 'v1', path as string, '--ttl', '1y'])).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^pinned 1 path\(s\) in acme\/app as v1 until \d{4}-/),
      stderr: '',
    });
    const missing = await cli(['pin', 'add', 'acme/app', 'v2', '/nix/store/' + '0'.repeat(32) + '-absent']);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining("not in slice 'acme/app'")]);
    const list = await cli(['pin', 'list']);
    expect(list.stdout).toContain(`acme/app\tv1\t${path}\t`);
    const slices = await cli(['slices']);
    expect(slices.stdout).toMatch(
      /^slice\tpaths\tsize\tquota_use\tlast_push\tpins\nacme\/app\t\d+\t.*\tv1\n$/,
    );
    expect((await cli(['pin', 'rm', 'acme/app', 'v1'])).code).toBe(0);
    expect((await cli(['pin', 'rm', 'acme/app', 'v1'])).stderr).toContain("no pin 'v1'");
  });
});
