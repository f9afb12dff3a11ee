/** What the main step hands to the post step, through saved state (the only channel between them). */
import * as core from '@actions/core';
import { State } from './constants.js';
import type { RunningDaemon } from './daemon-client.js';

export interface SavedState {
  /** This use of the Action found Sluice already configured by an earlier use: post does nothing. */
  reused?: boolean;
  strict: boolean;
  summary: boolean;
  drainTimeoutSeconds: number;
  /** Problems met by the main step, each with what to do about it, for the job summary. */
  problems: string[];
  /** How the main step ended up configuring the cache, for the summary. */
  mode?: 'read-write' | 'read-only' | 'anonymous' | 'github' | 'off';
  /** GitHub cache mode: where the pack goes and under which keys. */
  pack?: {
    saveKey: string;
    restoreKeys: string[];
    maxBytes: number;
    dir: string;
    /** False with `push: false`: the post step saves no pack. */
    save: boolean;
  };
  stateDir?: string;
  daemon?: RunningDaemon;
  /** File listing the store's entries when the main step ran, for post's fallback diff. */
  storeListFile?: string;
  nixConfig?: { file: string; scope: 'user' | 'system' };
  /** Files that hold the job's secrets (paths only): post deletes what the daemon left. */
  secretFiles?: string[];
  /** The 0600 file with the daemon's control secret, which post needs to drain and stop it. */
  controlSecretFile?: string;
  read?: string[];
  write?: string | null;
}

export function saveState(state: SavedState): void {
  core.saveState(State.Saved, JSON.stringify(state));
}

export function loadState(): SavedState | undefined {
  const raw = core.getState(State.Saved);
  if (!raw) return undefined;
  return JSON.parse(raw) as SavedState;
}
