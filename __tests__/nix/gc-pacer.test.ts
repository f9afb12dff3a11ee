/** Collections paced by spent bytes: the server's threads and the proxy's push rely on them. */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { GcPace } from '../../src/nix/gc-pacer.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The kinds of collection that started during each `spent(bytes)`, in a fresh process. */
async function collections(pace: GcPace, spends: number[], exposeGc = false): Promise<string[][]> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    ...(exposeGc ? ['--expose-gc'] : []),
    '--experimental-transform-types',
    '--no-warnings',
    '--import',
    join(here, 'ts-hooks.mjs'),
    join(here, 'gc-pacer-child.ts'),
    JSON.stringify(pace),
    ...spends.map(String),
  ]);
  return JSON.parse(stdout) as string[][];
}

describe('GcPacer', () => {
  it('collects the young generation every minorEveryBytes', async () => {
    const pace: GcPace = { minorEveryBytes: 1000, collector: 'thread' };
    expect(await collections(pace, [999, 1, 999, 1, 1000, 999])).toEqual([
      [],
      ['minor'],
      [],
      ['minor'],
      ['minor'],
      [],
    ]);
  });

  it("with collector 'exposed', collects only when the process runs with --expose-gc", async () => {
    const pace: GcPace = { minorEveryBytes: 10, collector: 'exposed' };
    expect(await collections(pace, [100, 5, 100])).toEqual([[], [], []]);
    expect(await collections(pace, [100, 5, 100], true)).toEqual([['minor'], [], ['minor']]);
  });
});
