// Every test run gets one temporary directory of its own (TMPDIR for the test processes and all the
// Nix, server and daemon processes they start), removed when the run ends: test servers' data,
// fresh Nix stores and Nix "machines" would otherwise pile up in /tmp run after run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tests-'));
  process.env.SLUICE_TEST_TMPDIR = dir;
  process.env.TMPDIR = dir;
}

export function teardown() {
  const dir = process.env.SLUICE_TEST_TMPDIR;
  if (dir) rmSync(dir, { recursive: true, force: true });
}
