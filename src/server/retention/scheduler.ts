/**
 * The server's collections: every `gc_interval`, one at a time, results logged and counted.
 * `sluice gc` runs the same collectGarbage; the lease keeps replicas and the CLI from overlapping.
 */
import type { Logger } from '../server-log.js';
import type { ServerMetrics } from '../metrics.js';
import { collectGarbage, type CollectOptions, type CollectorDeps, type GcReport } from './collector.js';

const MAX_TIMER_MS = 2 ** 31 - 1;

export interface GcScheduler {
  run(options?: CollectOptions): Promise<GcReport>;
  stop(): Promise<void>;
}

export function recordReport(metrics: ServerMetrics, report: GcReport): void {
  if (report.skipped) {
    metrics.gcRuns.inc({ result: 'skipped' });
    return;
  }
  metrics.gcRuns.inc({ result: 'done' });
  for (const slice of report.slices) {
    metrics.sliceBytes.set({ slice: slice.slice }, slice.kept.bytes);
    metrics.slicePaths.set({ slice: slice.slice }, slice.kept.paths);
    for (const [reason, tally] of Object.entries(slice.removed))
      metrics.gcCollectedBytes.inc({ reason }, tally.bytes);
    // A slice emptied by this run no longer exists.
    if (slice.kept.paths === 0) {
      metrics.sliceBytes.remove({ slice: slice.slice });
      metrics.slicePaths.remove({ slice: slice.slice });
    }
  }
  for (const nar of report.nars) metrics.gcCollectedBytes.inc({ reason: nar.reason }, nar.bytes);
}

export function startGcScheduler(
  deps: CollectorDeps,
  intervalSeconds: number,
  metrics: ServerMetrics,
  log: Logger,
): GcScheduler {
  let running: Promise<GcReport> | undefined;
  const run = (options: CollectOptions = {}): Promise<GcReport> => {
    const previous = running ?? Promise.resolve(undefined);
    const next = previous
      .catch(() => undefined)
      .then(() => collectGarbage(deps, options))
      .then((report) => {
        if (!report.dryRun) recordReport(metrics, report);
        log.info(
          {
            dryRun: report.dryRun,
            skipped: report.skipped,
            removedPaths: report.slices.reduce((sum, slice) => sum + slice.removedPaths.length, 0),
            removedNars: report.nars.length,
            removedNarBytes: report.nars.reduce((sum, nar) => sum + nar.bytes, 0),
            abortedUploads: report.abortedUploads,
          },
          'garbage collection',
        );
        return report;
      });
    running = next;
    next.catch((error: unknown) => {
      metrics.gcRuns.inc({ result: 'failed' });
      log.error({ err: error }, 'garbage collection failed');
    });
    return next;
  };
  // Node runs a longer delay than 2^31-1 ms (24.8 days) after 1 ms instead: cap it.
  const timer = setInterval(
    () => void run().catch(() => undefined),
    Math.min(intervalSeconds * 1000, MAX_TIMER_MS),
  );
  timer.unref();
  return {
    run,
    async stop() {
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
