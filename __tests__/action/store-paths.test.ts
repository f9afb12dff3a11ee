import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newStorePaths, recordStore, storeUnchanged } from '../../src/action/store-paths.js';

// A store directory of real entries (NIX_STORE_DIR), listed by the main step and diffed by the post step.
const hash = (c: string) => c.repeat(32);

describe('the store diff of the post step', () => {
  let root: string;
  let store: string;
  let record: string;
  let env: NodeJS.ProcessEnv;

  /** The directory last changed a minute ago, as a store is when a job starts after setup. */
  const quiet = () => {
    const minuteAgo = new Date(Date.now() - 60_000);
    utimesSync(store, minuteAgo, minuteAgo);
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sluice-store-'));
    store = join(root, 'store');
    mkdirSync(store);
    mkdirSync(join(store, `${hash('a')}-before`));
    writeFileSync(join(store, `${hash('b')}-before.drv`), '');
    record = join(root, 'store-before.txt');
    env = { NIX_STORE_DIR: store };
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('knows without listing again that a quiet store gained nothing', () => {
    quiet();
    expect(recordStore(record, env)).toBe(1);
    expect(storeUnchanged(record, env)).toBe(true);
    expect(newStorePaths(record, env)).toEqual([]);
  });

  it('finds an entry added after the main step, however long the store was quiet before', () => {
    quiet();
    recordStore(record, env);
    mkdirSync(join(store, `${hash('c')}-built`));
    expect(storeUnchanged(record, env)).toBe(false);
    expect(newStorePaths(record, env)).toEqual([join(store, `${hash('c')}-built`)]);
  });

  it('lists again after an entry was removed and another added (same count)', () => {
    quiet();
    recordStore(record, env);
    rmSync(join(store, `${hash('a')}-before`), { recursive: true });
    mkdirSync(join(store, `${hash('d')}-other`));
    expect(storeUnchanged(record, env)).toBe(false);
    expect(newStorePaths(record, env)).toEqual([join(store, `${hash('d')}-other`)]);
  });

  it('does not trust the timestamps of a store that changed moments before the main step', () => {
    // mtime granularity (2 s on some file systems) could hide a change made in the same tick.
    recordStore(record, env);
    expect(storeUnchanged(record, env)).toBe(false);
    mkdirSync(join(store, `${hash('e')}-built`));
    expect(newStorePaths(record, env)).toEqual([join(store, `${hash('e')}-built`)]);
  });
});
