/**
 * The job summary: what the cache did for this job in distinct store paths, and what went wrong
 * with what to do about it. Sentences rather than wide tables, so it reads on a phone.
 */
import * as core from '@actions/core';
import type { DaemonStats } from './daemon-client.js';
import type { SavedState } from './state.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Found / looked up, in distinct paths. */
export function hitRate(paths: { found: number; notFound: number }): string {
  const total = paths.found + paths.notFound;
  return total === 0 ? 'n/a' : `${Math.round((paths.found / total) * 1000) / 10}%`;
}

const MODE_TEXT: Record<NonNullable<SavedState['mode']>, string> = {
  'read-write': 'read and push',
  'read-only': 'read only (this job may not push)',
  anonymous: 'read only, anonymously (no OIDC token)',
  github: 'the GitHub Actions cache, one pack per job',
  off: 'not used',
};

const plural = (count: number, one: string, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;

/** `/nix/store/<hash>-hello-2.12` → `hello-2.12`. */
function pathName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return /^[0-9a-z]{32}-/.test(base) ? base.slice(33) : base;
}

/** "4 of 4 paths from the cache (100%), 783 KiB." */
export function fromCacheLine(stats: DaemonStats): string {
  const { found, notFound, downloadedBytes } = stats.paths;
  if (found + notFound === 0) return 'Nix looked nothing up in the cache.';
  return `**${found} of ${plural(found + notFound, 'path')} from the cache** (${hitRate(stats.paths)}), ${formatBytes(downloadedBytes)}.`;
}

/** "Pushed 3 paths (1.2 MiB) in 2.0 s; skipped 5: 2 already cached, 3 on an upstream cache." */
export function pushLine(stats: DaemonStats): string {
  const { alreadyCached, upstream, filtered } = stats.skipped;
  const reasons = [
    alreadyCached > 0 ? `${alreadyCached} already cached` : '',
    upstream > 0 ? `${upstream} on an upstream cache` : '',
    filtered > 0 ? `${filtered} excluded by push-filter` : '',
  ].filter(Boolean);
  const skipped = alreadyCached + upstream + filtered;
  const failed = stats.failed.length > 0 ? ` **${stats.failed.length} failed** (below).` : '';
  const queued = stats.queued > 0 ? ` ${plural(stats.queued, 'path')} left unpushed at the deadline.` : '';
  return (
    `**Pushed ${plural(stats.pushed.paths, 'path')}** (${formatBytes(stats.pushed.bytes)}) in ${stats.pushSeconds.toFixed(1)} s` +
    (skipped > 0 ? `; skipped ${skipped}: ${reasons.join(', ')}.` : '.') +
    failed +
    queued
  );
}

function largestList(title: string, items: DaemonStats['paths']['largestPushed']): string {
  if (items.length === 0) return '';
  const rows = items.map(
    (item) => `<li><code>${escapeHtml(pathName(item.path))}</code> ${formatBytes(item.bytes)}</li>`,
  );
  return `<p>${title}</p><ul>${rows.join('')}</ul>`;
}

/** Adds the summary to core.summary (the caller writes it). */
export function buildSummary(state: SavedState, stats: DaemonStats | undefined, problems: string[]): void {
  const summary = core.summary.addHeading('Sluice cache', 2);
  if (stats) {
    summary.addRaw(fromCacheLine(stats), true);
    summary.addRaw('\n', true);
    if (state.mode === 'read-write') summary.addRaw(pushLine(stats), true).addRaw('\n', true);
  }
  summary.addRaw(`Cache: ${MODE_TEXT[state.mode ?? 'off']}.`, true);
  if (state.mode !== 'github') {
    const read = stats?.read ?? state.read ?? [];
    const write = stats ? stats.write : (state.write ?? null);
    summary.addRaw(`Slices read: ${read.length ? read.map((s) => `\`${s}\``).join(', ') : 'none'}. `, false);
    summary.addRaw(`Slice written: ${write ? `\`${write}\`` : 'none'}.`, true);
    if (stats?.pin && !stats.pin.error)
      summary.addRaw(`Pinned ${stats.pin.paths} paths as \`${escapeHtml(stats.pin.name)}\`.`, true);
  }
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
  if (stats) {
    const { largestDownloaded, largestPushed } = stats.paths;
    const largest =
      largestList('Downloaded from the cache:', largestDownloaded) + largestList('Pushed:', largestPushed);
    if (largest) summary.addDetails('Largest paths', largest);
  }
  if (stats && stats.failed.length > 0) {
    summary.addDetails(
      `${stats.failed.length} paths failed to push`,
      stats.failed.map((f) => escapeHtml(`${f.path}: ${f.error}`)).join('<br>'),
    );
  }
}

const HTML_ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };

/**
 * Text inside the summary's HTML (lists, details): escaped, and on one line as the browser shows it
 * anyway. A blank line would end the HTML block and let a server's error text be Markdown again.
 */
export function escapeHtml(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[&<>]/g, (c) => HTML_ENTITIES[c]!);
}

/**
 * Text from elsewhere (a cache entry's key, an error quoting a pack) as literal Markdown text on
 * one line: no link, image, autolink, emphasis, code or HTML of its own.
 */
export function markdownText(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[\\`*_~[\]()!:<>&]/g, (c) => HTML_ENTITIES[c] ?? `\\${c}`);
}
