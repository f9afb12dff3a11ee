/**
 * The main step's Nix setup: pick the nix.conf that whoever runs the builds reads, write the Sluice
 * block (and the hook script), restart the Nix daemon when there is one, and check Nix sees the proxy.
 */
import * as core from '@actions/core';
import {
  confFile,
  detectScope,
  effectiveSubstituters,
  restartNixDaemon,
  writeHookScript,
  writeNixConf,
  writeSubstituterFile,
  type NixConfScope,
} from './nix-config.js';

export interface NixSetup {
  stateDir: string;
  /** The proxy's address, without the secret path. */
  proxyUrl: string;
  /** The secret path Nix must put before every cache route. */
  cachePrefix: string;
  /** The 0600 file with the control secret, for the hook. */
  controlSecretFile: string;
  publicKeys: string[];
  /** The hook bundle, when the job pushes; no hook is installed otherwise. */
  hookBundle?: string;
}

/** Reports a problem to the caller, who decides between warning and failing (`strict`). */
export type ProblemSink = (message: string) => void;

export async function configureNix(
  setup: NixSetup,
  problem: ProblemSink,
): Promise<{ file: string; scope: NixConfScope }> {
  const scope = detectScope();
  const file = confFile(scope);
  const substituter = `${setup.proxyUrl}/${setup.cachePrefix}`;
  const substituterFile = writeSubstituterFile(setup.stateDir, substituter);
  const hook = setup.hookBundle
    ? writeHookScript(
        setup.stateDir,
        process.execPath,
        setup.hookBundle,
        setup.proxyUrl,
        setup.controlSecretFile,
      )
    : undefined;
  await writeNixConf(file, {
    substituterFile,
    publicKeys: setup.publicKeys,
    ...(hook ? { postBuildHook: hook } : {}),
  });
  if (scope === 'system') {
    try {
      const how = await restartNixDaemon();
      core.info(`Nix runs builds through its daemon: changed ${file} and restarted it (${how}).`);
    } catch (error) {
      problem(
        `Sluice changed ${file} but could not restart the Nix daemon (${(error as Error).message}): until it restarts, Nix does not use the cache.`,
      );
    }
  } else {
    core.info(`Nix runs builds as this user: configured ${file}.`);
  }
  await checkNixSeesProxy(substituter, problem);
  return { file, scope };
}

async function checkNixSeesProxy(url: string, problem: ProblemSink): Promise<void> {
  let substituters: string[];
  try {
    substituters = await effectiveSubstituters();
  } catch (error) {
    core.debug(`could not read Nix's configuration: ${(error as Error).message}`);
    return;
  }
  if (!substituters.some((s) => s.replace(/\/$/, '') === url)) {
    // The list may hold our own URL under another port or an old secret: never print it whole.
    const shown = substituters.map((s) => s.replace(/^(https?:\/\/[^/]+)\/.*$/, '$1/…'));
    problem(
      `Nix does not list Sluice's proxy among its substituters (${shown.join(' ') || 'none'}): another nix.conf may override it with \`substituters = …\` in a later position.`,
    );
  }
}
