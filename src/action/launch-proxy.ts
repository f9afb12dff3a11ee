/**
 * Starting the proxy daemon, the same in server mode and GitHub cache mode: the job's two proxy
 * secrets and the files that hold them, then the daemon started from its config file and waited
 * for. A daemon that does not start is a problem for the summary, not an exception.
 */
import * as core from '@actions/core';
import { join } from 'node:path';
import { PROXY_BUNDLE } from './constants.js';
import {
  DaemonStartError,
  newJobSecrets,
  removeFiles,
  startDaemon,
  writeControlSecret,
  type JobSecrets,
  type RunningDaemon,
} from './daemon-client.js';
import type { SavedState } from './state.js';

export interface ProxyCredentials {
  secrets: JobSecrets;
  /** The 0600 file with the control secret (the hook and the post step read it). */
  controlSecretFile: string;
  /** Every file that holds a secret: the daemon's config first, then those the daemon deletes itself. */
  secretFiles: string[];
}

/**
 * Makes the proxy's per-job credentials, masked in case Nix prints its substituter's URL. The
 * files are recorded in `state` at once: the post step deletes what is left, however the job went.
 */
export function proxyCredentials(stateDir: string, state: SavedState): ProxyCredentials {
  const secrets = newJobSecrets();
  core.setSecret(secrets.cachePrefix);
  core.setSecret(secrets.controlSecret);
  const controlSecretFile = writeControlSecret(stateDir, secrets.controlSecret);
  const secretFiles = [
    join(stateDir, 'daemon.json'),
    controlSecretFile,
    join(stateDir, 'nix-substituter.conf'),
  ];
  state.secretFiles = secretFiles;
  state.controlSecretFile = controlSecretFile;
  return { secrets, controlSecretFile, secretFiles };
}

/** Starts the daemon of `bundles` and waits until it is ready; undefined (and a problem) if it did not start. */
export async function launchProxy(
  bundles: string,
  configFile: string,
  stateDir: string,
  host: string,
  credentials: ProxyCredentials,
  state: SavedState,
  problem: (message: string) => void,
): Promise<RunningDaemon | undefined> {
  try {
    const daemon = await startDaemon(
      join(bundles, PROXY_BUNDLE, 'index.js'),
      configFile,
      stateDir,
      host,
      credentials.secrets.controlSecret,
    );
    state.daemon = daemon;
    core.info(`Sluice's proxy is listening at ${daemon.url} (pid ${daemon.pid}).`);
    return daemon;
  } catch (error) {
    removeFiles(credentials.secretFiles);
    if (!(error instanceof DaemonStartError)) throw error;
    problem(`Sluice's proxy did not start, so this job runs without the cache: ${error.message}`);
    return undefined;
  } finally {
    // The daemon deletes its config (token, keys) once read; this covers a daemon that died first.
    removeFiles([configFile]);
  }
}
