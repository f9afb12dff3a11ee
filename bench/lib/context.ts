/** What every scenario gets: the sizes for this run, where to put files, what is available. */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PathGroup } from './closures.js';
import { MiB } from './stats.js';

export interface Sizes {
  repetitions: number;
  /** Distinct narinfo GETs; half of them hit. */
  lookups: number;
  /** The closure substituted by Nix (leaves; one root path is added). */
  substitution: PathGroup[];
  /** What the post step pushes. */
  push: PathGroup[];
  /** Each concurrent job's closure, and how many jobs run at once. */
  concurrentJob: PathGroup[];
  concurrentJobs: number;
  /** Growth: push `growthPush` paths and look up `growthLookups` narinfos, times 1, 4 and 16. */
  growthPush: PathGroup;
  growthLookups: number;
  /** The one NAR streamed through the S3-backed server while its memory is watched. */
  bigNar: number;
  /** GitHub cache mode: the closure job 2 restores from the pack and substitutes (leaves; plus a root). */
  ghaPack: PathGroup[];
  /** GitHub cache mode: path counts of the jobs whose cache-service calls are counted. */
  ghaCallPaths: number[];
  /** Narinfos in the large cache the lookups run against (seeded directly into its database). */
  largeCache: number;
  /** Leaves of the mostly-missing job's closure (a tenth of them cached). */
  missJob: number;
  /** Narinfos in the garbage-collection scenario (5% of them removed). */
  gcNarinfos: number;
}

export const FULL: Sizes = {
  repetitions: 3,
  lookups: 10_000,
  substitution: [{ count: 199, bytes: 1 * MiB }],
  push: [
    { count: 20, bytes: 50 * MiB },
    { count: 200, bytes: Math.round(0.1 * MiB) },
  ],
  concurrentJob: [{ count: 16, bytes: 16 * MiB }],
  concurrentJobs: 8,
  growthPush: { count: 50, bytes: Math.round(0.1 * MiB) },
  growthLookups: 625,
  bigNar: 1024 * MiB,
  ghaPack: [
    { count: 20, bytes: 50 * MiB },
    { count: 200, bytes: Math.round(0.1 * MiB) },
  ],
  ghaCallPaths: [20, 200, 2_000],
  largeCache: 1_000_000,
  missJob: 1_000,
  gcNarinfos: 100_000,
};

/** `--quick`: the same scenarios at a fraction of the size, for iterating on the benchmark itself. */
export const QUICK: Sizes = {
  repetitions: 3,
  lookups: 1_000,
  substitution: [{ count: 19, bytes: 1 * MiB }],
  push: [
    { count: 2, bytes: 10 * MiB },
    { count: 20, bytes: Math.round(0.1 * MiB) },
  ],
  concurrentJob: [{ count: 4, bytes: 4 * MiB }],
  concurrentJobs: 8,
  growthPush: { count: 10, bytes: Math.round(0.1 * MiB) },
  growthLookups: 100,
  bigNar: 64 * MiB,
  ghaPack: [
    { count: 2, bytes: 10 * MiB },
    { count: 20, bytes: Math.round(0.1 * MiB) },
  ],
  // The counts the issue names: tiny paths, cheap even at 2,000.
  ghaCallPaths: [20, 200, 2_000],
  largeCache: 50_000,
  missJob: 100,
  gcNarinfos: 10_000,
};

export interface Bundles {
  /** Directory holding cli/index.js and proxy/index.js freshly bundled by bench/run.js. */
  dir: string;
  /** Bundle name → why it is missing. */
  unavailable: Record<string, string>;
}

export function loadBundles(): Bundles {
  const dir = process.env.SLUICE_BENCH_BUNDLES;
  if (!dir)
    throw new Error('run the benchmark with `npm run bench` (bench/run.js bundles the Sluice parts first)');
  const unavailable = JSON.parse(readFileSync(join(dir, 'unavailable.json'), 'utf8')) as Record<
    string,
    string
  >;
  return { dir, unavailable };
}

export interface Context {
  quick: boolean;
  sizes: Sizes;
  bundles: Bundles;
  nginx: string | undefined;
  log: (message: string) => void;
  /** With `--profile`: where the Sluice processes write CPU profiles, and what each pid was. */
  profileDir?: string;
  processLabels: Map<number, string>;
  /** A fresh scratch directory, removed at the end of the run. */
  scratch: (name: string) => string;
  cleanup: () => void;
}

export function makeContext(quick: boolean, nginx: string | undefined, profileDir?: string): Context {
  // Readable by others: nginx's workers run as an unprivileged user and serve files from here.
  const root = mkdtempSync(join(tmpdir(), 'sluice-bench-work-'));
  chmodSync(root, 0o755);
  let counter = 0;
  const started = Date.now();
  return {
    quick,
    sizes: quick ? QUICK : FULL,
    bundles: loadBundles(),
    nginx,
    ...(profileDir ? { profileDir } : {}),
    processLabels: new Map(),
    log: (message) =>
      process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}\n`),
    scratch: (name) => {
      const dir = mkdtempSync(join(root, `${name}-${counter++}-`));
      chmodSync(dir, 0o755);
      return dir;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
