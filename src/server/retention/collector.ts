/**
 * One garbage collection: under the lease, per slice: plan (plan.ts), then delete narinfos in
 * batches (referrers first, each batch refused if one of its rows was used meanwhile), then NAR
 * files no narinfo uses any more and orphans, each claimed before its blob is deleted so a push of
 * the same NAR waits rather than lose it. Talks to storage only through BlobStore and
 * MetadataStore. A dry run plans the same and deletes nothing.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/config-schema.js';
import type { BlobInfo, BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { narKeysInUse } from './nar-keys.js';
import { Pacer } from './pacer.js';
import { planSlice, type PathEntry, type RemovalReason } from './plan.js';
import { retentionFor } from './slices.js';
import { readSlice } from './slice-rows.js';

export const GC_LEASE = 'gc';
const LEASE_MS = 15 * 60_000;
const BATCH = 500;

export interface CollectorDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  config: Config;
  now?: () => number;
  /** Test seam: runs just before a claimed NAR file is deleted (to force races). */
  beforeBlobDelete?: (key: string) => Promise<void>;
  /** How the collection shares the event loop (pacer.ts); one per run by default. */
  pacer?: Pacer;
}

export interface CollectOptions {
  slice?: string;
  dryRun?: boolean;
}

export interface Tally {
  paths: number;
  bytes: number;
}

export interface SliceReport {
  slice: string;
  maxAgeSeconds?: number;
  maxSizeBytes?: number;
  pullRequestTtlSeconds?: number;
  kept: Tally;
  pinned: Tally;
  removed: Partial<Record<RemovalReason, Tally>>;
  /** In deletion order. */
  removedPaths: { storePath: string; reason: RemovalReason; bytes: number }[];
  overQuota: boolean;
  /** Why some planned removals were not made (a path was used during the run). */
  interrupted?: string;
}

export type NarReason = 'orphan' | 'unused';

export interface GcReport {
  dryRun: boolean;
  time: Date;
  /** Set when nothing ran (another collector holds the lease). */
  skipped?: string;
  slices: SliceReport[];
  nars: { key: string; bytes: number; reason: NarReason }[];
  expiredPins: { slice: string; name: string }[];
  /** Real runs: uploads begun before the grace window and never finished, dropped (S3 multipart, temp files). */
  abortedUploads?: number;
}

const tally = (entries: { fileSize: number }[]): Tally => ({
  paths: entries.length,
  bytes: entries.reduce((sum, entry) => sum + entry.fileSize, 0),
});

export async function collectGarbage(deps: CollectorDeps, options: CollectOptions = {}): Promise<GcReport> {
  const now = (deps.now ?? Date.now)();
  const holder = randomUUID();
  const report: GcReport = {
    dryRun: options.dryRun === true,
    time: new Date(now),
    slices: [],
    nars: [],
    expiredPins: [],
  };
  if (!report.dryRun) {
    const held = await deps.meta.acquireLease(GC_LEASE, holder, new Date(now + LEASE_MS), new Date(now));
    if (!held) return { ...report, skipped: 'another collector is running (it holds the gc lease)' };
  }
  try {
    // Renewed before each slice and each deletion step: a paced collection of a big cache may
    // outlast one lease, and once another replica holds it (ours expired: a paused process, a
    // clock that jumped) this one must delete nothing more.
    const renewLease = async () => {
      if (report.dryRun) return;
      const at = (deps.now ?? Date.now)();
      if (!(await deps.meta.acquireLease(GC_LEASE, holder, new Date(at + LEASE_MS), new Date(at))))
        throw new Error('the gc lease expired during the collection and another collector holds it now');
    };
    await collect({ ...deps, pacer: deps.pacer ?? new Pacer(), renewLease }, options, now, report);
  } finally {
    if (!report.dryRun) await deps.meta.releaseLease(GC_LEASE, holder);
  }
  return report;
}

type PacedDeps = CollectorDeps & { pacer: Pacer; renewLease: () => Promise<void> };

async function collect(deps: PacedDeps, options: CollectOptions, now: number, report: GcReport) {
  const { meta, config, pacer } = deps;
  const unusedBefore = new Date(now - config.gcGraceSeconds * 1000);
  const pins = [];
  for (const pin of await meta.listPins()) {
    if (pin.expiresAt && +pin.expiresAt <= now) {
      report.expiredPins.push({ slice: pin.slice, name: pin.name });
      if (!report.dryRun) await meta.deletePin(pin.slice, pin.name);
    } else pins.push(pin);
  }
  const before = await narKeysInUse(meta, unusedBefore, pacer);
  // Keys that narinfos kept by this run (or in slices it does not touch) still use: for a dry run,
  // which cannot ask the store afterwards.
  const stillUsed = new Set<string>();
  for (const slice of await meta.listSlices()) {
    await deps.renewLease();
    const entries = await readSlice(meta, slice, pacer);
    if (options.slice !== undefined && slice !== options.slice) {
      for (const entry of entries) stillUsed.add(entry.narKey);
      continue;
    }
    const retention = retentionFor(config, slice);
    const pinned = new Set(
      pins
        .filter((pin) => pin.slice === slice)
        .flatMap((pin) => pin.storePaths.map((path) => path.slice(11, 43))),
    );
    await pacer.pause();
    const plan = planSlice({
      entries,
      pinned,
      policy: retention.policy,
      now,
      graceSeconds: config.gcGraceSeconds,
      ...(retention.pullRequestTtlSeconds !== undefined
        ? { pullRequestTtlSeconds: retention.pullRequestTtlSeconds }
        : {}),
    });
    const sliceReport: SliceReport = {
      slice,
      ...(retention.policy.maxAgeSeconds !== undefined
        ? { maxAgeSeconds: retention.policy.maxAgeSeconds }
        : {}),
      ...(retention.policy.maxSizeBytes !== undefined ? { maxSizeBytes: retention.policy.maxSizeBytes } : {}),
      ...(retention.pullRequestTtlSeconds !== undefined
        ? { pullRequestTtlSeconds: retention.pullRequestTtlSeconds }
        : {}),
      kept: tally(plan.keep),
      pinned: plan.pinned,
      removed: {},
      removedPaths: [],
      overQuota: plan.overQuota,
    };
    for (const entry of plan.keep) stillUsed.add(entry.narKey);
    const done = report.dryRun
      ? plan.remove
      : await deleteInBatches(deps, slice, plan.remove, unusedBefore, now);
    if (done.length < plan.remove.length) {
      sliceReport.interrupted = `${plan.remove.length - done.length} paths were used during the collection and stay`;
      for (const { entry } of plan.remove.slice(done.length)) stillUsed.add(entry.narKey);
      sliceReport.kept = tally([...plan.keep, ...plan.remove.slice(done.length).map(({ entry }) => entry)]);
    }
    for (const { entry, reason } of done) {
      const count = (sliceReport.removed[reason] ??= { paths: 0, bytes: 0 });
      count.paths++;
      count.bytes += entry.fileSize;
      sliceReport.removedPaths.push({ storePath: entry.storePath, reason, bytes: entry.fileSize });
    }
    report.slices.push(sliceReport);
  }
  // A real run asks the store again (pushes may have come meanwhile); a dry run deleted nothing.
  const after = report.dryRun
    ? { referenced: stillUsed, touched: before.touched }
    : await narKeysInUse(meta, unusedBefore, pacer);
  const inUse = new Set([...after.referenced, ...after.touched]);
  await collectNars(deps, report, inUse, before.referenced, unusedBefore, now);
}

/** Deletes the planned narinfos, referrers first; stops at the first batch used meanwhile. */
async function deleteInBatches(
  deps: PacedDeps,
  slice: string,
  remove: { entry: PathEntry; reason: RemovalReason }[],
  unusedBefore: Date,
  now: number,
): Promise<{ entry: PathEntry; reason: RemovalReason }[]> {
  let done = 0;
  while (done < remove.length) {
    // A batch holds one reason, so its audit row says why.
    const reason = remove[done]!.reason;
    let end = done;
    while (end < remove.length && end - done < BATCH && remove[end]!.reason === reason) end++;
    const batch = remove.slice(done, end).map(({ entry }) => entry);
    await deps.renewLease();
    const deleted = await deps.meta.deleteNarInfos(
      slice,
      batch.map((entry) => entry.hashPart),
      unusedBefore,
      { time: new Date(now), slice, reason, items: batch.map((entry) => entry.storePath), ...tally(batch) },
    );
    if (!deleted) break;
    await deps.pacer.pause();
    done = end;
  }
  return remove.slice(0, done);
}

/** NAR files deleted at once: each file's I/O waits its turn behind the lookups, so they overlap. */
const NAR_CHUNK = 32;
/**
 * A claim lapses a minute after its time (a push then takes the file over, as from a dead
 * collector): one older than this when its file is about to be deleted is taken again first.
 */
const RECLAIM_AFTER_MS = 10_000;

/**
 * NAR files no narinfo uses, not touched nor written within the grace window: claimed one by one,
 * then a chunk's files deleted at once and its claims finished in one transaction.
 */
async function collectNars(
  deps: PacedDeps,
  report: GcReport,
  inUse: Set<string>,
  referencedBefore: Set<string>,
  unusedBefore: Date,
  now: number,
): Promise<void> {
  const deleted: Record<NarReason, { key: string; bytes: number }[]> = { orphan: [], unused: [] };
  const candidates: BlobInfo[] = [];
  for await (const blob of deps.blobs.list((key) => inUse.has(key)))
    if (+blob.modifiedAt < +unusedBefore) candidates.push(blob);
  const clock = deps.now ?? Date.now;
  // Stamped with the time it is made, not the run's start: a run that is minutes old would
  // otherwise make claims that have already lapsed, and a push could reuse the file it deletes.
  const claim = async (key: string): Promise<number | undefined> => {
    const at = clock();
    return (await deps.meta.claimNarDeletion(key, unusedBefore, new Date(at))) ? at : undefined;
  };
  for (let i = 0; i < candidates.length; i += NAR_CHUNK) {
    let chunk = candidates.slice(i, i + NAR_CHUNK);
    if (!report.dryRun) {
      await deps.renewLease();
      const claimed: { blob: BlobInfo; at: number }[] = [];
      for (const blob of chunk) {
        const at = await claim(blob.key);
        if (at !== undefined) claimed.push({ blob, at });
      }
      const deleted: BlobInfo[] = [];
      try {
        await Promise.all(
          claimed.map(async ({ blob, at }) => {
            await deps.beforeBlobDelete?.(blob.key);
            // Slow deletes or a paused process: a claim near its end is renewed (same checks) or
            // the file stays, since a push may have used it meanwhile.
            if (clock() - at > RECLAIM_AFTER_MS && (await claim(blob.key)) === undefined) return;
            await deps.blobs.delete(blob.key);
            deleted.push(blob);
          }),
        );
      } finally {
        await deps.meta.finishNarDeletion(claimed.map(({ blob }) => blob.key));
      }
      chunk = chunk.filter((blob) => deleted.includes(blob));
    }
    for (const blob of chunk) {
      const reason: NarReason = referencedBefore.has(blob.key) ? 'unused' : 'orphan';
      deleted[reason].push({ key: blob.key, bytes: blob.size });
      report.nars.push({ key: blob.key, bytes: blob.size, reason });
    }
    await deps.pacer.pause();
  }
  if (report.dryRun) return;
  await deps.renewLease();
  report.abortedUploads = await deps.blobs.abortIncompleteUploads(unusedBefore);
  for (const reason of ['orphan', 'unused'] as const) {
    const list = deleted[reason];
    for (let i = 0; i < list.length; i += BATCH) {
      const batch = list.slice(i, i + BATCH);
      await deps.meta.finishNarDeletion([], {
        time: new Date(now),
        slice: null,
        reason,
        items: batch.map((nar) => nar.key),
        bytes: batch.reduce((sum, nar) => sum + nar.bytes, 0),
      });
    }
  }
}
