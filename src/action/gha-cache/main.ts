/**
 * The main step in GitHub cache mode (no server): make this job's narinfo signing key, start the
 * proxy daemon with the pack keys (it restores the newest pack in the background, so this step
 * does not wait for the download), and point Nix at it, trusting this job's key only.
 */
import * as core from '@actions/core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateSecretKey } from '../../nix/signing.js';
import { configureNix } from '../configure-nix.js';
import { HOOK_BUNDLE, JobEnv, Outputs } from '../constants.js';
import { launchProxy, proxyCredentials } from '../launch-proxy.js';
import { writeDaemonConfig } from '../../contracts/daemon-config.js';
import type { ActionInputs } from '../inputs.js';
import type { SavedState } from '../state.js';
import { recordStore } from '../store-paths.js';
import { cacheEnv, packKeys } from './keys.js';

export async function setUpPackCache(
  inputs: ActionInputs,
  state: SavedState,
  stateDir: string,
  problem: (message: string) => void,
): Promise<void> {
  state.mode = 'github';
  const env = process.env;
  // Cache service v2 is at ACTIONS_RESULTS_URL; the older v1 (some GHES) at ACTIONS_CACHE_URL.
  if (!env.ACTIONS_RUNTIME_TOKEN || !(env.ACTIONS_RESULTS_URL || env.ACTIONS_CACHE_URL)) {
    problem(
      'The GitHub Actions cache is not available to this step (ACTIONS_RUNTIME_TOKEN or ACTIONS_RESULTS_URL is not set): is this an Actions runner? The job runs without the cache.',
    );
    state.mode = 'off';
    return;
  }
  const keys = packKeys(process.env, inputs.key);
  // `push: false`: restore and serve the pack, save none (and need no post-build hook).
  const save = inputs.push !== 'false';
  const signingKey = generateSecretKey(`sluice-job-${process.env.GITHUB_RUN_ID || 'local'}`);
  const packDir = join(stateDir, 'pack');
  mkdirSync(packDir, { mode: 0o700 });
  state.pack = {
    saveKey: keys.saveKey,
    restoreKeys: keys.restoreKeys,
    maxBytes: inputs.maxPackBytes,
    dir: packDir,
    save,
  };
  core.info(
    `Sluice uses the GitHub Actions cache: restoring the newest pack of ${keys.restoreKeys.join(', ')}${save ? '' : '; `push: false`, so no pack will be saved'}.`,
  );

  const bundles = dirname(dirname(process.argv[1]!));
  const credentials = proxyCredentials(stateDir, state);
  const { secrets, controlSecretFile, secretFiles } = credentials;
  const configFile = await writeDaemonConfig({
    listen: `${inputs.listen.host}:${inputs.listen.port}`,
    server: '',
    token: null,
    tokenExpiresAt: null,
    audience: inputs.audience,
    push: {
      enabled: save,
      ...(inputs.pushFilter ? { filter: inputs.pushFilter } : {}),
      upstreamCaches: inputs.upstreamCaches,
      compression: 'zstd',
    },
    stateDir,
    read: [],
    write: null,
    pack: {
      signingKey: signingKey.text,
      dir: packDir,
      restoreKey: keys.saveKey,
      restoreKeys: keys.restoreKeys,
      cacheEnv: cacheEnv(process.env),
    },
    auth: secrets,
    secretFiles: secretFiles.slice(1),
  });
  const daemon = await launchProxy(
    bundles,
    configFile,
    stateDir,
    inputs.listen.host,
    credentials,
    state,
    problem,
  );
  if (!daemon) return;
  state.nixConfig = await configureNix(
    {
      stateDir,
      proxyUrl: daemon.url,
      cachePrefix: secrets.cachePrefix,
      controlSecretFile,
      // Trusted by this job's nix.conf only, and gone with it: see docs/action.md, "Trust".
      publicKeys: [signingKey.publicKey.text],
      ...(save ? { hookBundle: join(bundles, HOOK_BUNDLE, 'index.js') } : {}),
    },
    problem,
  );
  core.exportVariable(JobEnv.ProxyUrl, daemon.url);
  core.setOutput(Outputs.Substituter, daemon.url);
  const storeListFile = join(stateDir, 'store-before.txt');
  const count = recordStore(storeListFile);
  state.storeListFile = storeListFile;
  core.info(`Recorded ${count} store paths present before the job's builds.`);
}
