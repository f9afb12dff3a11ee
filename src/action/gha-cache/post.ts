/**
 * The post step in GitHub cache mode: the daemon writes the job's new pack (if the job built
 * something new), stops, and this step saves the pack with @actions/cache (CreateCacheEntry,
 * upload, FinalizeCacheEntryUpload: with the restore's one call, three calls per job). Failures
 * become problems (warnings, or the job's failure with `strict`), never exceptions.
 */
import * as core from '@actions/core';
import { existsSync } from 'node:fs';
import { savePack } from '../../contracts/pack-cache.js';
import type { NewPackReport } from '../../contracts/pack-api.js';
import { ControlRoute } from '../../contracts/control-api.js';
import { Outputs } from '../constants.js';
import { control, ensureStopped, isAlive, readControlSecret, type DaemonStats } from '../daemon-client.js';
import { describeFetchError } from '../exchange-client.js';
import type { SavedState } from '../state.js';
import { newStorePaths, validPaths } from '../store-paths.js';

const GRACE_MS = 10_000;

export interface PackOutcome {
  report?: NewPackReport;
  saved?: { key: string; paths: number; bytes: number; seconds: number };
  /** Why no pack was saved. */
  notSaved?: string;
}

export async function finishPack(
  state: SavedState,
  problems: string[],
): Promise<{ stats?: DaemonStats; outcome: PackOutcome }> {
  const daemon = state.daemon;
  const pack = state.pack!;
  if (!daemon) return { outcome: { notSaved: 'the proxy did not start' } };
  if (!isAlive(daemon.pid, daemon.startTime)) {
    problems.push(
      `Sluice's proxy (pid ${daemon.pid}) died during the job: no pack was saved. See its log below.`,
    );
    return { outcome: { notSaved: 'the proxy died during the job' } };
  }
  const secret = state.controlSecretFile ? readControlSecret(state.controlSecretFile) : undefined;
  if (!secret) {
    problems.push(`Sluice's control secret is gone, so the proxy could not write the pack; it is stopped.`);
    await ensureStopped(daemon, 0);
    return { outcome: { notSaved: 'the control secret was gone' } };
  }
  let report: NewPackReport | undefined;
  try {
    // Without saving, the daemon only reports what came from the pack: no store diff needed.
    const paths =
      pack.save && state.storeListFile && existsSync(state.storeListFile)
        ? await validPaths(newStorePaths(state.storeListFile))
        : [];
    core.info(`Planning the job's pack (${paths.length} new store paths found).`);
    report = await control<NewPackReport>(
      daemon.url,
      secret,
      ControlRoute.Pack,
      { paths, maxBytes: pack.maxBytes },
      state.drainTimeoutSeconds * 1000 + GRACE_MS,
    );
  } catch (error) {
    problems.push(
      error instanceof Error && error.name === 'TimeoutError'
        ? `Sluice's proxy did not write the job's pack in time: no pack was saved. Raise \`drain-timeout\` if this repeats.`
        : `Sluice's proxy could not write the job's pack (${describeFetchError(error)}): no pack was saved.`,
    );
  }
  await control(daemon.url, secret, ControlRoute.Shutdown, {}, 5_000).catch(() => undefined);
  const ended = await ensureStopped(daemon);
  if (ended === 'survived') problems.push(`Sluice's proxy (pid ${daemon.pid}) survived SIGKILL.`);
  if (!report) return { outcome: { notSaved: 'the proxy did not write the pack' } };

  const restore = report.restore;
  if (restore.outcome === 'failed') {
    problems.push(
      `Sluice could not restore a pack from the GitHub Actions cache (${restore.error}); Nix built what it needed instead.`,
    );
  }
  if (restore.corrupt) {
    problems.push(
      `The restored pack ${restore.key} is corrupt: ${restore.corrupt}. Nothing more of it was served; Nix built the rest.`,
    );
  }
  for (const message of report.stats.errors)
    if (!restore.corrupt || !message.includes(restore.corrupt)) problems.push(message);

  const outcome: PackOutcome = { report };
  if (!report.written) {
    outcome.notSaved = report.reason ?? 'nothing to save';
  } else {
    const started = Date.now();
    const saved = await savePack(report.written.root, pack.saveKey);
    if (saved.ok) {
      outcome.saved = {
        key: pack.saveKey,
        paths: report.written.paths,
        bytes: report.written.bytes,
        seconds: (Date.now() - started) / 1000,
      };
    } else {
      const why = 'error' in saved ? saved.error : 'unknown';
      outcome.notSaved = `the GitHub Actions cache did not take it: ${why}`;
      problems.push(`Sluice could not save the job's pack to the GitHub Actions cache: ${why}`);
    }
  }
  core.setOutput(Outputs.RestoredKey, restore.key ?? '');
  core.setOutput(Outputs.SavedKey, outcome.saved?.key ?? '');
  core.setOutput(Outputs.PackUsedPaths, report.used.paths);
  const stats: DaemonStats = {
    ...report.stats,
    pushed: { paths: outcome.saved?.paths ?? 0, bytes: outcome.saved?.bytes ?? 0 },
  };
  return { stats, outcome };
}
