/** Text for `sluice gc` and `sluice slices`: per slice what stays, what goes and why. */
import type { Config } from '../config/config-schema.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { GcReport, SliceReport } from './collector.js';
import { readSlice } from './slice-rows.js';
import { retentionFor } from './slices.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ['y', 31536000],
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

function limits(slice: SliceReport): string {
  const parts = [
    slice.maxAgeSeconds !== undefined ? `max_age ${formatDuration(slice.maxAgeSeconds)}` : 'no max_age',
    slice.maxSizeBytes !== undefined ? `max_size ${formatBytes(slice.maxSizeBytes)}` : 'no max_size',
  ];
  if (slice.pullRequestTtlSeconds !== undefined)
    parts.push(`pull request ttl ${formatDuration(slice.pullRequestTtlSeconds)}`);
  return parts.join(', ');
}

/** One block per slice, then the NAR files; every removed path or file on a line of its own. */
export function formatGcReport(report: GcReport): string {
  if (report.skipped) return `sluice gc: nothing done: ${report.skipped}\n`;
  const lines: string[] = [];
  if (report.dryRun) lines.push('dry run: nothing was removed; a real run now would remove what follows');
  for (const pin of report.expiredPins) lines.push(`pin ${pin.slice} ${pin.name}: expired, removed`);
  for (const slice of report.slices) {
    const removed = Object.entries(slice.removed)
      .map(([reason, tally]) => `${reason} ${tally.paths} (${formatBytes(tally.bytes)})`)
      .join(', ');
    lines.push(
      `slice ${slice.slice} (${limits(slice)}): kept ${slice.kept.paths} paths (${formatBytes(slice.kept.bytes)}), ` +
        `pinned ${slice.pinned.paths} (${formatBytes(slice.pinned.bytes)}); removed ${slice.removedPaths.length}` +
        (removed ? `: ${removed}` : ''),
    );
    if (slice.overQuota)
      lines.push(
        `  over quota: pins and recently used paths alone exceed max_size; nothing pinned is removed`,
      );
    if (slice.interrupted) lines.push(`  stopped early: ${slice.interrupted}`);
    for (const path of slice.removedPaths)
      lines.push(`  remove ${path.storePath} (${path.reason}, ${path.bytes} bytes)`);
  }
  const narBytes = report.nars.reduce((sum, nar) => sum + nar.bytes, 0);
  lines.push(`NAR files: removed ${report.nars.length} (${formatBytes(narBytes)})`);
  for (const nar of report.nars) lines.push(`  remove nar/${nar.key} (${nar.reason}, ${nar.bytes} bytes)`);
  return `${lines.join('\n')}\n`;
}

export interface SliceSummary {
  slice: string;
  paths: number;
  bytes: number;
  maxSizeBytes?: number;
  lastPush: Date | null;
  pins: string[];
}

export async function summarizeSlices(meta: MetadataStore, config: Config): Promise<SliceSummary[]> {
  const pins = await meta.listPins();
  const names = new Set([...(await meta.listSlices()), ...pins.map((pin) => pin.slice)]);
  const summaries: SliceSummary[] = [];
  for (const slice of [...names].sort()) {
    const entries = await readSlice(meta, slice);
    const { policy } = retentionFor(config, slice);
    summaries.push({
      slice,
      paths: entries.length,
      bytes: entries.reduce((sum, entry) => sum + entry.fileSize, 0),
      ...(policy.maxSizeBytes !== undefined ? { maxSizeBytes: policy.maxSizeBytes } : {}),
      lastPush: entries.length
        ? new Date(entries.reduce((latest, entry) => Math.max(latest, entry.createdAt), 0))
        : null,
      pins: pins.filter((pin) => pin.slice === slice).map((pin) => pin.name),
    });
  }
  return summaries;
}

export const SLICE_COLUMNS = ['slice', 'paths', 'size', 'quota_use', 'last_push', 'pins'] as const;

export function sliceRow(summary: SliceSummary): string[] {
  return [
    summary.slice,
    String(summary.paths),
    formatBytes(summary.bytes),
    summary.maxSizeBytes
      ? `${((summary.bytes / summary.maxSizeBytes) * 100).toFixed(1)}% of ${formatBytes(summary.maxSizeBytes)}`
      : '-',
    summary.lastPush?.toISOString() ?? '-',
    summary.pins.join(',') || '-',
  ];
}
