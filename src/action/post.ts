/**
 * The post step: push what the job built within `drain-timeout`, stop the daemon (always), write
 * the job summary and set the outputs. It never fails the job unless `strict` is set.
 */
import * as core from '@actions/core';
import { existsSync, readFileSync } from 'node:fs';
import { Outputs } from './constants.js';
import { ControlRoute, type DrainRequest } from '../contracts/control-api.js';
import { finishPack, type PackOutcome } from './gha-cache/post.js';
import { addPackSummary } from './gha-cache/summary.js';
import {
  control,
  ensureStopped,
  isAlive,
  readControlSecret,
  removeFiles,
  type DaemonStats,
} from './daemon-client.js';
import { describeFetchError } from './exchange-client.js';
import { removeNixConf, restartNixDaemon } from './nix-config.js';
import { loadState, type SavedState } from './state.js';
import { newStorePaths, validPaths } from './store-paths.js';
import { buildSummary, hitRate } from './summary.js';

/** Time the daemon gets beyond the drain deadline to answer, before post stops waiting. */
const DRAIN_GRACE_MS = 10_000;

export async function run(): Promise<void> {
  process.on('uncaughtException', (error) => core.warning(`Sluice post step: ${error.message}`));
  const state = loadState();
  if (!state || state.reused) return;
  const problems = [...state.problems];
  let stats: DaemonStats | undefined;
  let pack: PackOutcome | undefined;
  try {
    if (state.pack) ({ stats, outcome: pack } = await finishPack(state, problems));
    else stats = await finish(state, problems);
  } catch (error) {
    problems.push(`Sluice's post step failed: ${(error as Error).message}`);
  }
  try {
    await restoreNixConf(state, problems);
  } catch (error) {
    problems.push(`Sluice could not clean up nix.conf: ${(error as Error).message}`);
  }
  try {
    // The daemon deletes these when it stops; not when it was killed or never started.
    removeFiles(state.secretFiles ?? []);
  } catch (error) {
    problems.push(`Sluice could not delete its secret files: ${(error as Error).message}`);
  }

  const newProblems = problems.slice(state.problems.length);
  for (const message of newProblems) core.warning(message);
  if (stats) {
    // Distinct store paths, not lookups: Nix looks a path up more than once.
    core.setOutput(Outputs.Hits, stats.paths.found);
    core.setOutput(Outputs.Misses, stats.paths.notFound);
    core.setOutput(Outputs.PushedPaths, stats.pushed.paths);
    core.setOutput(Outputs.PushedBytes, stats.pushed.bytes);
    core.info(
      `Sluice: ${stats.paths.found} of ${stats.paths.found + stats.paths.notFound} paths from the cache (${hitRate(stats.paths)}), ${stats.paths.downloadedBytes} bytes; pushed ${stats.pushed.paths} paths (${stats.pushed.bytes} bytes).`,
    );
  }
  if (state.daemon) showLog(state.daemon.logFile);
  if (state.summary) {
    try {
      buildSummary(state, stats, problems);
      if (pack) addPackSummary(pack);
      await core.summary.write();
    } catch (error) {
      core.warning(`Sluice could not write the job summary: ${(error as Error).message}`);
    }
  }
  if (state.strict && newProblems.length > 0) core.setFailed(newProblems.join('\n'));
}

/** Drains the daemon's pushes (adding the store diff), then stops it whatever happened. */
async function finish(state: SavedState, problems: string[]): Promise<DaemonStats | undefined> {
  const daemon = state.daemon;
  if (!daemon) return undefined;
  if (!isAlive(daemon.pid, daemon.startTime)) {
    problems.push(
      `Sluice's proxy (pid ${daemon.pid}) died during the job; what it did not push is lost. See its log below.`,
    );
    return undefined;
  }
  const secret = state.controlSecretFile ? readControlSecret(state.controlSecretFile) : undefined;
  if (!secret) {
    problems.push(
      `Sluice's control secret (${state.controlSecretFile ?? 'no file'}) is gone, so the proxy could not be asked to push; it is stopped.`,
    );
    await ensureStopped(daemon, 0);
    return undefined;
  }
  let stats: DaemonStats | undefined;
  try {
    const paths =
      state.storeListFile && existsSync(state.storeListFile)
        ? await validPaths(newStorePaths(state.storeListFile))
        : [];
    core.info(
      `Draining pushes for up to ${state.drainTimeoutSeconds} s (${paths.length} new store paths found).`,
    );
    stats = await control<DaemonStats>(
      daemon.url,
      secret,
      ControlRoute.Drain,
      { deadlineSeconds: state.drainTimeoutSeconds, paths } satisfies DrainRequest,
      state.drainTimeoutSeconds * 1000 + DRAIN_GRACE_MS,
    );
  } catch (error) {
    problems.push(
      `Sluice's proxy did not finish pushing in time (${describeFetchError(error)}): some builds were not pushed. Raise \`drain-timeout\` if this repeats.`,
    );
    stats = await control<DaemonStats>(daemon.url, secret, ControlRoute.Stats, undefined, 5_000).catch(
      () => undefined,
    );
  }
  await control(daemon.url, secret, ControlRoute.Shutdown, {}, 5_000).catch(() => undefined);
  const ended = await ensureStopped(daemon);
  if (ended === 'survived') problems.push(`Sluice's proxy (pid ${daemon.pid}) survived SIGKILL.`);
  else if (ended !== 'exited') core.info(`Sluice's proxy did not exit on request and was ${ended}.`);

  if (stats) {
    for (const message of stats.errors) problems.push(message);
    if (stats.queued > 0) {
      problems.push(
        `${stats.queued} paths were still queued when \`drain-timeout\` (${state.drainTimeoutSeconds} s) ran out; raise it to push them.`,
      );
    }
    if (stats.failed.length > 0) {
      problems.push(
        `${stats.failed.length} paths failed to push (first: ${stats.failed[0]!.path}: ${stats.failed[0]!.error}).`,
      );
    }
  }
  return stats;
}

/**
 * The proxy is gone, so the Sluice block comes out of nix.conf: later steps (and, on self-hosted
 * runners, later jobs) must not wait on a dead substituter or run a hook whose files are gone.
 */
async function restoreNixConf(state: SavedState, problems: string[]): Promise<void> {
  if (!state.nixConfig) return;
  const removed = await removeNixConf(state.nixConfig.file);
  if (removed && state.nixConfig.scope === 'system') {
    await restartNixDaemon().catch((error: Error) =>
      problems.push(
        `Sluice removed its settings from ${state.nixConfig!.file} but could not restart the Nix daemon: ${error.message}`,
      ),
    );
  }
}

function showLog(logFile: string): void {
  if (!existsSync(logFile)) return;
  core.startGroup('Sluice proxy log');
  core.info(readFileSync(logFile, 'utf8'));
  core.endGroup();
}
