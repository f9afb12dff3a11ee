/**
 * The main step: get a cache token for this job, start the proxy daemon, point Nix at it, and
 * leave the post step what it needs. Cache trouble never fails the job unless `strict` is set;
 * only misuse (invalid inputs) does.
 */
import * as core from '@actions/core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HOOK_BUNDLE, JobEnv, Outputs } from './constants.js';
import { writeDaemonConfig } from '../contracts/daemon-config.js';
import type { ExchangedToken } from '../contracts/server-api.js';
import { ExchangeRefusedError, exchangeToken, getIdToken, probeAnonymousReads } from './exchange-client.js';
import { readInputs, type ActionInputs } from './inputs.js';
import { configureNix } from './configure-nix.js';
import { launchProxy, proxyCredentials } from './launch-proxy.js';
import { nixVersion } from './nix-config.js';
import { setUpPackCache } from './gha-cache/main.js';
import { checkPublicKey, NixConfValueError } from './nix-conf-values.js';
import { saveState, type SavedState } from './state.js';
import { recordStore } from './store-paths.js';

export async function run(): Promise<void> {
  let inputs: ActionInputs;
  try {
    inputs = readInputs();
  } catch (error) {
    core.setFailed((error as Error).message);
    return;
  }
  const state: SavedState = {
    strict: inputs.strict,
    summary: inputs.summary,
    drainTimeoutSeconds: inputs.drainTimeoutSeconds,
    problems: [],
  };
  try {
    await setUp(inputs, state);
  } catch (error) {
    problem(state, `Sluice could not set up the cache: ${(error as Error).message}. Nix builds without it.`);
  } finally {
    saveState(state);
  }
}

/** Inputs of server mode: the server is known. */
type ServerInputs = ActionInputs & { server: URL };

/** Records a problem for the summary, as a warning, or as the step's failure when `strict` is set. */
function problem(state: SavedState, message: string): void {
  state.problems.push(message);
  if (state.strict) core.setFailed(message);
  else core.warning(message);
}

async function setUp(inputs: ActionInputs, state: SavedState): Promise<void> {
  const earlier = process.env[JobEnv.ProxyUrl];
  if (earlier) {
    core.info(
      `Sluice is already set up in this job (proxy at ${earlier}): this step reuses it and ignores its own inputs.`,
    );
    core.setOutput(Outputs.Substituter, earlier);
    state.reused = true;
    return;
  }

  const version = await nixVersion();
  if (!version) {
    core.warning('Sluice found no `nix` on PATH, so it does nothing. Install Nix in a step before this one.');
    state.reused = true; // Nothing for the post step to do either.
    return;
  }
  core.info(`Found ${version}.`);

  const stateDir = mkdtempSync(join(process.env.RUNNER_TEMP || tmpdir(), 'sluice-'));
  state.stateDir = stateDir;
  if (!inputs.server) return setUpPackCache(inputs, state, stateDir, (message) => problem(state, message));
  await setUpServer({ ...inputs, server: inputs.server }, state, stateDir);
}

async function setUpServer(inputs: ServerInputs, state: SavedState, stateDir: string): Promise<void> {
  const access = await getAccess(inputs, state);
  if (!access) {
    state.mode = 'off';
    return;
  }

  const pushEnabled =
    access.grant !== undefined &&
    (inputs.push === 'true' || (inputs.push === 'auto' && access.grant.write !== null));
  if (inputs.push === 'true' && access.grant?.write === null) {
    problem(
      state,
      "`push: true` but the server granted this job no slice to write: nothing will be pushed. Check the server's policy for this repository and ref.",
    );
  }
  state.mode = access.grant ? (pushEnabled ? 'read-write' : 'read-only') : 'anonymous';
  state.read = access.grant?.read ?? [];
  state.write = access.grant?.write ?? null;

  const bundles = dirname(dirname(process.argv[1]!));
  const listen = `${inputs.listen.host}:${inputs.listen.port}`;
  const idTokenUrl = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const idTokenRequestToken = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  const credentials = proxyCredentials(stateDir, state);
  const { secrets, controlSecretFile, secretFiles } = credentials;
  const configFile = await writeDaemonConfig({
    listen,
    server: inputs.server.href,
    token: access.grant?.token ?? null,
    tokenExpiresAt: access.grant?.expiresAt ?? null,
    audience: inputs.audience,
    // The daemon refreshes the cache token with a new ID token when a long job outlives it.
    ...(access.grant && idTokenUrl && idTokenRequestToken
      ? { idTokenRequest: { url: idTokenUrl, token: idTokenRequestToken } }
      : {}),
    push: {
      enabled: pushEnabled,
      ...(inputs.pushFilter ? { filter: inputs.pushFilter } : {}),
      upstreamCaches: inputs.upstreamCaches,
      compression: inputs.compression,
    },
    stateDir,
    read: access.grant?.read ?? [],
    write: access.grant?.write ?? null,
    ...(inputs.pin ? { pin: inputs.pin } : {}),
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
    (message) => problem(state, message),
  );
  if (!daemon) return;

  state.nixConfig = await configureNix(
    {
      stateDir,
      proxyUrl: daemon.url,
      cachePrefix: secrets.cachePrefix,
      controlSecretFile,
      publicKeys: access.publicKeys,
      ...(pushEnabled ? { hookBundle: join(bundles, HOOK_BUNDLE, 'index.js') } : {}),
    },
    (message) => problem(state, message),
  );

  core.exportVariable(JobEnv.ProxyUrl, daemon.url);
  core.setOutput(Outputs.Substituter, daemon.url);
  const storeListFile = join(stateDir, 'store-before.txt');
  const count = recordStore(storeListFile);
  state.storeListFile = storeListFile;
  core.info(`Recorded ${count} store paths present before the job's builds.`);
}

interface Access {
  /** Absent: anonymous, read-only through the proxy. */
  grant?: ExchangedToken;
  publicKeys: string[];
}

async function getAccess(inputs: ServerInputs, state: SavedState): Promise<Access | undefined> {
  let idToken: string;
  try {
    idToken = await getIdToken(inputs.audience);
  } catch (error) {
    core.notice(
      `Sluice got no OIDC ID token (${(error as Error).message}). To read and write the cache, add ` +
        '`permissions: id-token: write` to this job or workflow. Pull requests from forks never get one; they read only if the server allows anonymous reads.',
    );
    state.problems.push(
      'No OIDC ID token: add `permissions: id-token: write` to the job (forks never get one).',
    );
    return anonymous(inputs, state);
  }
  try {
    const grant = await exchangeToken(inputs.server, idToken);
    core.info(
      `Sluice token exchange: reading ${grant.read.join(', ') || 'no slices'}, writing ${grant.write ?? 'no slice'}, until ${grant.expiresAt}.`,
    );
    return trustedKeys(state, { grant, publicKeys: grant.publicKeys });
  } catch (error) {
    if (error instanceof ExchangeRefusedError) {
      problem(
        state,
        `${error.message}. Check the server's policy for this repository, ref and audience '${inputs.audience}'.`,
      );
      return state.strict ? undefined : anonymous(inputs, state);
    }
    problem(
      state,
      `Sluice's server is unavailable (${(error as Error).message}); the job goes on without the cache. Check the server's health and the \`server\` input.`,
    );
    return undefined;
  }
}

async function anonymous(inputs: ServerInputs, state: SavedState): Promise<Access | undefined> {
  const anonymousReads = await probeAnonymousReads(inputs.server);
  if (!anonymousReads) {
    core.info('The server does not serve the cache anonymously: this job runs without the cache.');
    return undefined;
  }
  core.info('The server serves the cache anonymously: this job reads from it and pushes nothing.');
  state.mode = 'anonymous';
  return trustedKeys(state, { publicKeys: anonymousReads.publicKeys });
}

/**
 * The server's keys go into nix.conf, where a newline would add settings of the server's choosing:
 * any key that is not exactly `name:base64(32 bytes)` means the cache is not used at all.
 */
function trustedKeys(state: SavedState, access: Access): Access | undefined {
  try {
    access.publicKeys.forEach(checkPublicKey);
    return access;
  } catch (error) {
    if (!(error instanceof NixConfValueError)) throw error;
    problem(
      state,
      `Sluice does not use the cache in this job: the server's answer gave a signing key that cannot go into nix.conf (${error.message}). Check the server's signing key and that nothing between the runner and the server alters its answers.`,
    );
    return undefined;
  }
}
