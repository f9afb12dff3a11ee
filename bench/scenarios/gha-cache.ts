/**
 * GitHub cache mode (no server): job 2 restores a closure from job 1's pack and Nix substitutes it,
 * against `@actions/cache` restoring the same entry as a plain archive (the download limit) and
 * against Nix substituting the same closure from a file:// cache; and how many cache-service calls
 * a job makes for 20, 200 and 2,000 paths. The jobs run as the runner runs them: the bundled steps
 * through the tests' runner harness, the cache service stand-in, the real Azurite behind it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addTinyPaths, makeNixMachine, nix, salt } from '../../__tests__/support/nix.js';
import type { Scope } from '../../__tests__/support/cache-service.js';
import { Job, type StepResult } from '../../__tests__/support/runner.js';
import { restorePlainArchive, startActionsCache, type ActionsCache } from '../lib/actions-cache.js';
import { copyToFileCache, makeSigningKey, substituteIntoFreshStore } from '../lib/binary-cache.js';
import { buildFan, deletePaths, type Closure, type PathGroup } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import { childrenCpuSeconds, cpuSeconds } from '../lib/processes.js';
import type { Row, Side } from '../lib/report.js';
import { reason, sluiceUnavailable } from '../lib/sluice.js';
import { median, MiB, rotate, timed } from '../lib/stats.js';

const MAIN: Scope = { ref: 'refs/heads/main', readRefs: [] };
/** Names of the store paths this run makes start with this: other processes add paths to the shared store. */
const PREFIX = `sluice-bench-gha${randomBytes(4).toString('hex')}`;
const INPUTS = {
  listen: '127.0.0.1:0',
  'upstream-caches': '',
  // Only this run's paths go into packs, not what others build meanwhile (the post step's store diff).
  'push-filter': `^(?!/nix/store/[0-9a-z]{32}-${PREFIX}-)`,
};
/** Nix's default narinfo TTLs, as on a runner (see substituteIntoFreshStore). */
const RUNNER_TTLS = 'narinfo-cache-positive-ttl = 2592000\nnarinfo-cache-negative-ttl = 3600\n';

function describeGroups(groups: PathGroup[]): string {
  const parts = groups.map((group) => `${group.count} × ${Math.round((group.bytes / MiB) * 10) / 10} MiB`);
  const total = groups.reduce((sum, group) => sum + group.count * group.bytes, 0);
  return `${Math.round(total / MiB)} MiB (${parts.join(' + ')})`;
}

function newJob(
  context: Context,
  cache: ActionsCache,
  scope: Scope,
  env?: NodeJS.ProcessEnv,
): { job: Job; token: string } {
  const token = cache.service.tokenFor(scope);
  const job = new Job({
    dist: context.bundles.dir,
    machine: makeNixMachine(RUNNER_TTLS),
    inputs: INPUTS,
    github: { ref: scope.ref, cache: { url: cache.service.url, token } },
    ...(env ? { env } : {}),
  });
  return { job, token };
}

/**
 * With `--profile`, job 2's steps run with V8's profiler (NODE_OPTIONS, which the main step's
 * daemon and the daemon's restore process inherit) into a directory of their own; only the pack
 * daemon's profile and its restore process's are kept. (`--trace-gc` would count collections, but
 * Node does not take it in NODE_OPTIONS.) `SLUICE_BENCH_JOB2_NODE_OPTIONS` adds options of one's
 * own for job 2's steps, such as `--import=<a module counting collections>`.
 */
function profiledEnv(context: Context): { env?: NodeJS.ProcessEnv; dir?: string } {
  const extra = process.env.SLUICE_BENCH_JOB2_NODE_OPTIONS ?? '';
  if (!context.profileDir) return extra ? { env: { NODE_OPTIONS: extra } } : {};
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-job2-profiles-'));
  return { env: { NODE_OPTIONS: `${extra} --cpu-prof --cpu-prof-dir=${dir}`.trim() }, dir };
}

/** The pid of the daemon's restore process, from the line the daemon logs when it starts it. */
function restoreChildPid(logFile: string): number | undefined {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('restoring the pack in a child process')) continue;
    try {
      const pid = (JSON.parse(line) as { pid?: unknown }).pid;
      if (typeof pid === 'number') return pid;
    } catch {
      // not one of the daemon's JSON lines
    }
  }
  return undefined;
}

function keepDaemonProfiles(
  context: Context,
  dir: string | undefined,
  pids: { daemon?: number; restore?: number },
): void {
  if (!dir || !context.profileDir) return;
  try {
    for (const [pid, label] of [
      [pids.daemon, 'gha-cache job 2: pack daemon'],
      [pids.restore, "gha-cache job 2: the daemon's restore process (@actions/cache)"],
    ] as const) {
      if (pid === undefined) continue;
      const file = readdirSync(dir).find((name) => name.split('.')[3] === String(pid));
      if (!file) continue;
      mkdirSync(context.profileDir, { recursive: true });
      renameSync(join(dir, file), join(context.profileDir, file));
      context.processLabels.set(pid, label);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectClean(step: StepResult, name: string): void {
  if (step.exitCode !== 0 || step.warnings.length > 0)
    // The log's end holds the proxy's log (the post step prints it), which says what went wrong.
    throw new Error(`${name}: exit ${step.exitCode}, ${step.warnings.join('; ')} ${step.log.slice(-1500)}`);
}

function discard(job: Job): void {
  rmSync(job.runnerTemp, { recursive: true, force: true });
  rmSync(job.machine.dir, { recursive: true, force: true });
}

/** A fresh, empty store: job 2's new runner. */
function freshStore(): string {
  return mkdtempSync(join(tmpdir(), 'sluice-bench-store-'));
}

/** Job 1: builds `groups` as a closure (the post-build hook reports each build) and saves one pack. */
async function saveFirstPack(
  context: Context,
  cache: ActionsCache,
  groups: PathGroup[],
): Promise<{ closure: Closure; key: string; post: StepResult }> {
  const { job } = newJob(context, cache, MAIN);
  try {
    expectClean(await job.runMain(), 'job 1 main step');
    const closure = await buildFan(groups, job.machine, PREFIX);
    const post = await job.runPost();
    expectClean(post, 'job 1 post step');
    const key = post.outputs['pack-saved-key'] ?? '';
    if (key === '' || post.outputs['pushed-paths'] !== String(closure.paths.length))
      throw new Error(
        `job 1 saved no pack of ${closure.paths.length} paths: ${JSON.stringify(post.outputs)}`,
      );
    return { closure, key, post };
  } finally {
    discard(job);
  }
}

interface JobTwoSample {
  seconds: number;
  mainSeconds: number;
  daemonCpu: number;
  /** CPU of the daemon's child processes (a restore run in a child, the nix commands it runs). */
  childrenCpu: number;
  summary: string;
}

/** Job 2, timed from its main step until Nix has substituted `root`'s closure into a fresh store. */
async function jobTwo(context: Context, cache: ActionsCache, closure: Closure): Promise<JobTwoSample> {
  const profiling = profiledEnv(context);
  const { job, token } = newJob(context, cache, MAIN, profiling.env);
  const store = freshStore();
  const pids: { daemon?: number; restore?: number } = {};
  try {
    let mainSeconds = 0;
    const { seconds } = await timed(async () => {
      const main = await job.runMain();
      expectClean(main, 'job 2 main step');
      mainSeconds = main.durationMs / 1000;
      await job.run('nix-store', ['--store', store, '--realise', closure.root!, '--max-jobs', '0']);
    });
    const daemon = (job.savedState() as { daemon?: { pid: number; logFile: string } }).daemon;
    const daemonCpu = daemon ? cpuSeconds(daemon.pid) : NaN;
    const childrenCpu = daemon ? childrenCpuSeconds(daemon.pid) : NaN;
    if (daemon) pids.daemon = daemon.pid;
    const post = await job.runPost();
    expectClean(post, 'job 2 post step');
    if (post.outputs['pack-used-paths'] !== String(closure.paths.length))
      throw new Error(
        `job 2 took ${post.outputs['pack-used-paths']} paths from the pack, not ${closure.paths.length}`,
      );
    const calls = cache.service.callsOf(token).length;
    if (calls !== 1) throw new Error(`job 2 made ${calls} cache-service calls, expected 1`);
    const restorePid = daemon ? restoreChildPid(daemon.logFile) : undefined;
    if (restorePid !== undefined) pids.restore = restorePid;
    return { seconds, mainSeconds, daemonCpu, childrenCpu, summary: post.summary };
  } finally {
    rmSync(store, { recursive: true, force: true });
    discard(job);
    keepDaemonProfiles(context, profiling.dir, pids);
  }
}

/** "index read after 0.4 s (streamed), restore done after 9.1 s" from job 2's summary. */
function restoreTimes(summary: string): string {
  const index = /index read after ([\d.]+) s/.exec(summary)?.[1];
  const done = /restore done after ([\d.]+) s/.exec(summary)?.[1];
  return `index read after ${index ?? '?'} s, @actions/cache's restore returned after ${done ?? '?'} s`;
}

async function restoreRows(context: Context, cache: ActionsCache): Promise<Row[]> {
  const { sizes, log } = context;
  const description = describeGroups(sizes.ghaPack);
  log(`gha-cache: job 1 builds ${description} and saves its pack`);
  const first = await saveFirstPack(context, cache, sizes.ghaPack);
  const { closure } = first;
  try {
    const fileCache = context.scratch('gha-file-cache');
    const key = await makeSigningKey(context.scratch('gha-key'));
    await copyToFileCache([closure.root!], fileCache, key);

    const samples: JobTwoSample[] = [];
    const viaPack = async () => {
      const sample = await jobTwo(context, cache, closure);
      samples.push(sample);
      return sample.seconds;
    };
    const viaActionsCache = async () => {
      const dir = context.scratch('gha-plain-restore');
      try {
        return (await timed(() => restorePlainArchive(cache.service, MAIN, first.key, dir, dir))).seconds;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    const viaFile = async () =>
      (
        await timed(() =>
          substituteIntoFreshStore(closure.root!, { url: `file://${fileCache}`, publicKey: key.publicKey }),
        )
      ).seconds;
    log(`gha-cache: ${sizes.repetitions} repetitions of job 2, @actions/cache, file://`);
    const [pack, plain, file] = await rotate(sizes.repetitions, [viaPack, viaActionsCache, viaFile]);
    const mid = [...samples].sort((a, b) => a.seconds - b.seconds)[Math.floor(samples.length / 2)]!;
    const note =
      `median job 2: ${mid.seconds.toFixed(1)} s (main step ${mid.mainSeconds.toFixed(1)} s, then nix-store --realise into an empty store); ` +
      `${restoreTimes(mid.summary)}; daemon ${mid.daemonCpu.toFixed(1)} s CPU, its child processes ${mid.childrenCpu.toFixed(1)} s. ` +
      `Job 1's post step (pack written and saved): ${(first.post.durationMs / 1000).toFixed(1)} s`;
    const scenario = `GitHub cache mode: job 2 restores a ${closure.paths.length}-path, ${description} closure from the pack and Nix substitutes it`;
    return [
      {
        scenario: `${scenario} vs @actions/cache restoring the same entry as a plain archive`,
        unit: 's',
        sluice: { samples: pack! },
        baseline: { samples: plain! },
        target: '≤ 1.2×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.2,
        note,
      },
      {
        scenario: `${scenario} vs Nix substituting it from file:// (zstd)`,
        unit: 's',
        sluice: { samples: pack! },
        baseline: { samples: file! },
        target: '≤ 1.5×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.5,
      },
    ];
  } finally {
    await deletePaths(closure);
  }
}

interface CallSample {
  saving: number;
  restoring: number;
  restoreSeconds: number;
}

/** One pair of jobs on a fresh ref: the first adds `count` tiny paths and saves them, the second restores them. */
async function countCalls(context: Context, cache: ActionsCache, count: number): Promise<CallSample> {
  const scope: Scope = { ref: `refs/heads/calls-${count}-${salt()}`, readRefs: [] };
  const saving = newJob(context, cache, scope);
  let paths: string[] = [];
  try {
    expectClean(await saving.job.runMain(), 'saving job main step');
    paths = await addTinyPaths(count, `${PREFIX}-calls${count}`, saving.job.machine);
    const post = await saving.job.runPost();
    expectClean(post, 'saving job post step');
    if (Number(post.outputs['pushed-paths']) !== count)
      throw new Error(`the saving job's pack holds ${post.outputs['pushed-paths']} paths, not ${count}`);
  } finally {
    discard(saving.job);
  }
  const restoring = newJob(context, cache, scope);
  const store = freshStore();
  try {
    expectClean(await restoring.job.runMain(), 'restoring job main step');
    const { seconds } = await timed(() =>
      restoring.job.run('nix-store', ['--store', store, '--realise', '--max-jobs', '0', ...paths]),
    );
    const post = await restoring.job.runPost();
    expectClean(post, 'restoring job post step');
    if (post.outputs['pack-used-paths'] !== String(count))
      throw new Error(`the restoring job took ${post.outputs['pack-used-paths']} paths from the pack`);
    return {
      saving: cache.service.callsOf(saving.token).length,
      restoring: cache.service.callsOf(restoring.token).length,
      restoreSeconds: seconds,
    };
  } finally {
    rmSync(store, { recursive: true, force: true });
    discard(restoring.job);
    await nix('nix-store', ['--delete', ...paths]).catch(() => undefined);
  }
}

async function callRows(context: Context, cache: ActionsCache): Promise<Row[]> {
  const rows: Row[] = [];
  for (const count of context.sizes.ghaCallPaths) {
    context.log(
      `gha-cache: cache-service calls for ${count} paths, ${context.sizes.repetitions} repetitions`,
    );
    const samples: CallSample[] = [];
    for (let repetition = 0; repetition < context.sizes.repetitions; repetition++)
      samples.push(await countCalls(context, cache, count));
    rows.push({
      scenario: `GitHub cache mode: cache-service calls per job, ${count.toLocaleString('en-US')} paths (saving job / restoring job)`,
      unit: 'calls',
      sluice: { samples: samples.map((s) => Math.max(s.saving, s.restoring)) },
      target: '≤ 3 per job',
      met: (calls) => calls <= 3,
      note:
        `saving job ${samples.map((s) => s.saving).join('/')} calls, restoring job ${samples.map((s) => s.restoring).join('/')}; ` +
        `the restoring job's Nix substituted the ${count} paths in ${median(samples.map((s) => s.restoreSeconds)).toFixed(2)} s (median)`,
    });
  }
  return rows;
}

/** The rows of one part, or one row saying why that part could not be measured. */
async function rowsOrReason(what: string, target: string, rows: () => Promise<Row[]>): Promise<Row[]> {
  try {
    return await rows();
  } catch (error) {
    const unavailable: Side = { unavailable: reason(error) };
    return [{ scenario: `GitHub cache mode: ${what}`, unit: 's', sluice: unavailable, target }];
  }
}

/** Only job 2's restore and substitution (`--only gha-restore`): no call counts. */
export async function ghaRestoreScenarios(context: Context): Promise<Row[]> {
  return ghaCacheScenarios(context, { calls: false });
}

export async function ghaCacheScenarios(context: Context, parts = { calls: true }): Promise<Row[]> {
  const missing = sluiceUnavailable(context, ['main', 'post', 'hook', 'proxy']);
  let cache: ActionsCache | undefined;
  try {
    let why = missing;
    if (!why)
      cache = await startActionsCache().catch((error: unknown) => {
        why = `Azurite or the cache service did not start: ${reason(error)}`;
        return undefined;
      });
    const ready = (): ActionsCache => {
      if (!cache) throw new Error(why);
      return cache;
    };
    return [
      ...(await rowsOrReason(
        'job 2 restores and substitutes a closure from the pack',
        '≤ 1.2× @actions/cache, ≤ 1.5× file://',
        () => restoreRows(context, ready()),
      )),
      ...(parts.calls
        ? await rowsOrReason('cache-service calls per job', '≤ 3 per job', () => callRows(context, ready()))
        : []),
    ];
  } finally {
    await cache?.close();
  }
}
