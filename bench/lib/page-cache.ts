/**
 * The page cache brought to the same state before every sample that writes GiBs, whichever side.
 *
 * On the benchmark's host (a VM) a write that grows the page cache costs the writer ~7–11 s of
 * kernel CPU per GiB once about a GiB of recently freed memory is used up, against ~0.3 s before
 * (`dd` of 1 GiB files, 2026-12-07: 0.28, 0.27, 0.30, then 8.2 and 8.0 s, `sync` between them;
 * after dropping the clean cache 0.4–1.1 s again). The cause was not pinned down: touching 1.5 GiB
 * of anonymous memory first took 0.8 s and did not help; compacting memory helped once; the guest
 * runs a DAMON `pageout` scheme (`kdamond`), the likeliest suspect. A scenario
 * that keeps what it wrote (the server's NARs, the closures built for later repetitions) handed
 * that cost to whichever sample came next, Sluice's or the baseline's: the push's samples ranged
 * 3.3–11 s on both sides.
 *
 * So before such a sample: `sync`, drop the clean page cache (root only; the run's machine
 * description says whether it could), then read back what the sample reads, as a job would find
 * it just after building: the closure's files and the programs it starts.
 *
 * The drop has a cost for what runs after: the S3 substitution after an S3 push that dropped took
 * 1.9–4.1 s instead of 1.2–1.5 s on both sides, GitHub cache mode's job 2 15–17 s instead of
 * 10–13 s, the "nothing new" step 1.0–1.3 s instead of 0.7–0.9 s (`2026-12-07T1412Z`, `T1438Z`).
 * So only the local push scenarios drop, and they run last.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  accessSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

const DROP_CACHES = '/proc/sys/vm/drop_caches';

/** Whether this run can drop the page cache (for the machine description). */
export function canDropPageCache(): boolean {
  try {
    accessSync(DROP_CACHES, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** `sync`, drop the clean page cache where allowed, then read `warm` (files or trees) back in. */
export function settlePageCache(warm: readonly string[]): void {
  spawnSync('sync');
  if (canDropPageCache()) writeFileSync(DROP_CACHES, '1');
  const buffer = Buffer.allocUnsafe(1 << 20);
  for (const path of [...warm, process.execPath]) readTree(path, buffer);
  spawnSync('nix', ['--version']);
}

function readTree(path: string, buffer: Buffer): void {
  const info = lstatSync(path, { throwIfNoEntry: false });
  if (info?.isDirectory()) {
    for (const name of readdirSync(path)) readTree(join(path, name), buffer);
  } else if (info?.isFile()) {
    const fd = openSync(path, 'r');
    try {
      while (readSync(fd, buffer, 0, buffer.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}
