/** The job summary: what the cache did for this job, and what went wrong with what to do about it. */
import * as core from '@actions/core';
import type { DaemonStats } from './daemon.js';
import type { SavedState } from './state.js';

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

export function hitRate(stats: Pick<DaemonStats, 'hits' | 'misses'>): string {
  const total = stats.hits + stats.misses;
  return total === 0 ? 'n/a' : `${Math.round((stats.hits / total) * 1000) / 10}%`;
}

const MODE_TEXT: Record<NonNullable<SavedState['mode']>, string> = {
  'read-write': 'read and push',
  'read-only': 'read only (this job may not push)',
  anonymous: 'read only, anonymously (no OIDC token)',
  off: 'not used',
};

/** Adds the summary to core.summary (the caller writes it). */
export function buildSummary(state: SavedState, stats: DaemonStats | undefined, problems: string[]): void {
  const summary = core.summary.addHeading('Sluice cache', 2);
  summary.addRaw(`Cache: ${MODE_TEXT[state.mode ?? 'off']}.`, true);
  if (stats) {
    summary.addTable([
      [
        { data: 'Hits', header: true },
        { data: 'Misses', header: true },
        { data: 'Hit rate', header: true },
        { data: 'Downloaded', header: true },
      ],
      [String(stats.hits), String(stats.misses), hitRate(stats), formatBytes(stats.bytesDownloaded)],
    ]);
    summary.addTable([
      [
        { data: 'Pushed', header: true },
        { data: 'Uploaded', header: true },
        { data: 'Upstream has them', header: true },
        { data: 'Already cached', header: true },
        { data: 'Filtered', header: true },
        { data: 'Failed', header: true },
        { data: 'Time pushing', header: true },
      ],
      [
        String(stats.pushed.paths),
        formatBytes(stats.pushed.bytes),
        String(stats.skipped.upstream),
        String(stats.skipped.alreadyCached),
        String(stats.skipped.filtered),
        String(stats.failed.length),
        `${stats.pushSeconds.toFixed(1)} s`,
      ],
    ]);
  }
  const read = stats?.read ?? state.read ?? [];
  const write = stats ? stats.write : (state.write ?? null);
  summary.addRaw(`Slices read: ${read.length ? read.map((s) => `\`${s}\``).join(', ') : 'none'}. `, false);
  summary.addRaw(`Slice written: ${write ? `\`${write}\`` : 'none'}.`, true);
  if (stats?.pin && !stats.pin.error)
    summary.addRaw(`Pinned ${stats.pin.paths} paths as \`${escapeHtml(stats.pin.name)}\`.`, true);
  if (state.nixConfig) {
    summary.addRaw(
      `Nix configuration: ${state.nixConfig.scope === 'system' ? 'system-wide (Nix daemon restarted)' : 'user'} nix.conf \`${state.nixConfig.file}\`.`,
      true,
    );
  }
  if (problems.length > 0) {
    summary.addHeading('What went wrong', 3);
    summary.addList(problems.map(escapeHtml));
  }
  if (stats && stats.failed.length > 0) {
    summary.addDetails(
      `${stats.failed.length} paths failed to push`,
      stats.failed.map((f) => escapeHtml(`${f.path}: ${f.error}`)).join('<br>'),
    );
  }
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
