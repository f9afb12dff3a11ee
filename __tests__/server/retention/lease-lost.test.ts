/**
 * A lease lost in the middle of a collection: the collector's lease expires (its clock jumps past
 * the 15 minutes, as when a process is paused) and another replica takes it. From then on the
 * first collector deletes nothing more, neither narinfo batches nor NAR files, and fails saying
 * why; the other replica keeps the lease. On SQLite and on PostgreSQL (where the lease lives), two
 * store handles on one database as two replicas; NAR files in a directory.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { collectGarbage } from '../../../src/server/retention/collector.js';
import { Pacer } from '../../../src/server/retention/pacer.js';
import { FsBlobStore } from '../../../src/server/storage/fs-blob-store.js';
import type { MetadataStore } from '../../../src/server/storage/metadata-store.js';
import { PgMetadataStore } from '../../../src/server/storage/pg-metadata-store.js';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata-store.js';
import { freshDatabase } from '../../support/backends.js';
import { DAY, TestClock } from '../../support/retention.js';

const MINUTE = 60_000;
/** More than one deletion batch (500) and many NAR chunks. */
const PATHS = 600;
const SLICE = 'acme/app';

type Pair = [MetadataStore, MetadataStore];
const backends: [string, () => Promise<Pair>][] = [
  [
    'SQLite',
    async () => {
      const path = join(mkdtempSync(join(tmpdir(), 'sluice-lease-')), 'sluice.db');
      return [new SqliteMetadataStore(path), new SqliteMetadataStore(path)];
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshDatabase();
      return [await PgMetadataStore.open(url), await PgMetadataStore.open(url)];
    },
  ],
];

const hash = (i: number) => String(i).padStart(32, '0');
/** A NAR file's name, as the collector lists them (52 nix32 characters). */
const narKey = (i: number) => `${String(i).padStart(52, '0')}.nar`;

/** A pacer that, on its first pause once `when` says so, lets `act` run (between two steps). */
class PacerWithHook extends Pacer {
  private fired = false;
  constructor(
    private readonly when: () => Promise<boolean>,
    private readonly act: () => Promise<void>,
  ) {
    super();
  }
  override async pause(): Promise<void> {
    if (!this.fired && (await this.when())) {
      this.fired = true;
      await this.act();
    }
    await super.pause();
  }
}

describe.each(backends)('a collection that loses its lease, on %s', (_name, open) => {
  let meta: MetadataStore;
  let replica2: MetadataStore;
  let narDir: string;
  let blobs: FsBlobStore;
  // Old narinfos: a month and more past max_age. NAR files are aged by their (real) mtime.
  const clock = new TestClock(Date.now() + 60 * DAY);
  const config = parseConfig('retention: { max_age: 30d }\n');

  beforeEach(async () => {
    [meta, replica2] = await open();
    narDir = mkdtempSync(join(tmpdir(), 'sluice-lease-nars-'));
    blobs = await FsBlobStore.open(narDir);
    const createdAt = new Date(Date.now() - MINUTE);
    for (let i = 0; i < PATHS; i++) {
      const storePath = `/nix/store/${hash(i)}-p${i}`;
      await meta.putNarInfo(
        {
          slice: SLICE,
          hashPart: hash(i),
          storePath,
          narKey: narKey(i),
          narinfo: `StorePath: ${storePath}\nURL: nar/${narKey(i)}\nFileSize: 10\nReferences: \n`,
          createdAt,
        },
        { time: createdAt, slice: SLICE, storePath, narSize: 10, fileSize: 10 },
      );
      writeFileSync(join(narDir, narKey(i)), 'ten bytes.');
    }
  });
  afterEach(async () => {
    await meta.close();
    await replica2.close();
  });

  /** Moves the clock past the first collector's lease, and replica 2 takes it. */
  async function replica2TakesTheLease(): Promise<void> {
    clock.set(clock.time + 16 * MINUTE);
    const at = new Date(clock.time);
    expect(await replica2.acquireLease('gc', 'replica-2', new Date(clock.time + 15 * MINUTE), at)).toBe(true);
  }

  async function expectReplica2HoldsTheLease(): Promise<void> {
    const at = new Date(clock.time);
    expect(await meta.acquireLease('gc', 'third', new Date(clock.time + MINUTE), at)).toBe(false);
  }

  const narinfosLeft = async () => (await meta.listNarInfos(SLICE, '', PATHS + 1)).length;
  const narFilesLeft = () => readdirSync(narDir).filter((name) => name.endsWith('.nar')).length;

  it('between two narinfo batches: the second batch and the NAR files stay', async () => {
    const pacer = new PacerWithHook(
      async () => (await replica2.listDeletions({})).length > 0,
      replica2TakesTheLease,
    );
    await expect(collectGarbage({ blobs, meta, config, now: clock.now, pacer })).rejects.toThrow(
      'the gc lease expired during the collection and another collector holds it now',
    );
    expect(await narinfosLeft()).toBe(PATHS - 500);
    expect(narFilesLeft()).toBe(PATHS);
    expect((await meta.listDeletions({})).map((row) => row.items.length)).toEqual([500]);
    await expectReplica2HoldsTheLease();
  });

  it('while NAR files are deleted: no file after the chunk in progress goes', async () => {
    let deletes = 0;
    const report = collectGarbage({
      blobs,
      meta,
      config,
      now: clock.now,
      beforeBlobDelete: async () => {
        if (deletes++ === 0) await replica2TakesTheLease();
      },
    });
    await expect(report).rejects.toThrow('another collector holds it now');
    expect(await narinfosLeft()).toBe(0);
    // The chunk under way was claimed under the lease; nothing was claimed after.
    expect(deletes).toBeGreaterThan(0);
    expect(deletes).toBeLessThanOrEqual(32);
    expect(narFilesLeft()).toBe(PATHS - deletes);
    await expectReplica2HoldsTheLease();
  });
});
