/** The job summary's part for GitHub cache mode: what came from the pack, what was built, what was saved. */
import * as core from '@actions/core';
import { formatBytes, markdownText } from '../summary.js';
import type { PackOutcome } from './post.js';

export function addPackSummary(outcome: PackOutcome): void {
  const summary = core.summary;
  const report = outcome.report;
  const restore = report?.restore;
  let restored: string;
  if (!restore) restored = 'unknown (the proxy did not report)';
  else if (restore.outcome === 'restored')
    restored =
      `${markdownText(restore.key ?? '')}: ${restore.paths} paths, ${formatBytes(restore.bytes ?? 0)}` +
      (restore.indexSeconds !== undefined
        ? `, index read after ${restore.indexSeconds.toFixed(1)} s (streamed)`
        : '') +
      (restore.seconds !== undefined ? `, restore done after ${restore.seconds.toFixed(1)} s` : '') +
      (restore.corrupt ? ` — **corrupt**, not served further: ${markdownText(restore.corrupt)}` : '');
  else if (restore.outcome === 'none') restored = 'none found for these keys';
  else
    restored = `failed: ${markdownText(restore.error ?? 'unknown')}${restore.corrupt ? ` (${markdownText(restore.corrupt)})` : ''}`;
  summary.addRaw(`Pack restored: ${restored}.`, true);
  if (report) {
    summary.addTable([
      [
        { data: 'From the pack', header: true },
        { data: 'Built or new', header: true },
        { data: 'New pack', header: true },
        { data: 'Added', header: true },
        { data: 'Dropped (max-pack-size)', header: true },
        { data: 'Upstream has them', header: true },
        { data: 'Filtered', header: true },
      ],
      [
        `${report.used.paths} paths, ${formatBytes(report.used.bytes)}`,
        `${report.built} paths`,
        report.plan ? `${report.plan.paths} paths, ${formatBytes(report.plan.narBytes)} of NARs` : '–',
        String(report.plan?.added ?? 0),
        String(report.plan?.dropped ?? 0),
        String(report.plan?.upstream ?? 0),
        String(report.plan?.filtered ?? 0),
      ],
    ]);
  }
  if (outcome.saved) {
    summary.addRaw(
      `Pack saved: \`${outcome.saved.key}\`, ${outcome.saved.paths} paths, ${formatBytes(outcome.saved.bytes)} in ${outcome.saved.seconds.toFixed(1)} s.`,
      true,
    );
  } else {
    summary.addRaw(`No pack saved: ${outcome.notSaved ?? 'unknown'}.`, true);
  }
}
