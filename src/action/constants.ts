/** Names shared by action.yml, the steps and the harness: inputs, outputs and saved-state keys. */

export enum Inputs {
  Server = 'server',
  Backend = 'backend',
  Key = 'key',
  MaxPackSize = 'max-pack-size',
  Audience = 'audience',
  Push = 'push',
  PushFilter = 'push-filter',
  UpstreamCaches = 'upstream-caches',
  Compression = 'compression',
  Listen = 'listen',
  DrainTimeout = 'drain-timeout',
  Strict = 'strict',
  Summary = 'summary',
  Pin = 'pin',
  PinTtl = 'pin-ttl',
}

export enum Outputs {
  Hits = 'hits',
  Misses = 'misses',
  PushedPaths = 'pushed-paths',
  PushedBytes = 'pushed-bytes',
  Substituter = 'substituter',
  RestoredKey = 'pack-restored-key',
  SavedKey = 'pack-saved-key',
  PackUsedPaths = 'pack-used-paths',
}

/** Saved state: the only channel from the main step to the post step. */
export enum State {
  /** JSON of `SavedState` (src/action/state.ts). */
  Saved = 'SLUICE_STATE',
}

/** Exported to the job's environment: a second use of the Action in the same job sees it. */
export enum JobEnv {
  ProxyUrl = 'SLUICE_PROXY_URL',
}

/** Where the daemon and hook bundles sit relative to the main/post bundle (dist/<name>/index.js). */
export const PROXY_BUNDLE = 'proxy';
export const HOOK_BUNDLE = 'hook';

export const NIX_CONF_BLOCK_BEGIN = '# sluice: begin (written by the Sluice GitHub Action)';
export const NIX_CONF_BLOCK_END = '# sluice: end';
