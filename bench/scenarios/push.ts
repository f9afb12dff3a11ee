/**
 * Pushing: the post step's drain of new paths against `nix copy --to file://…?compression=zstd`,
 * the memory the proxy and server need meanwhile, the "nothing new" post step, and how push time
 * grows with the path count.
 */
import { rmSync } from 'node:fs';
import { copyToFileCache, makeSigningKey, type SigningKey } from '../lib/binary-cache.js';
import { buildPaths, deletePaths, type Closure, type PathGroup } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import { settlePageCache } from '../lib/page-cache.js';
import { cpuNote, type CpuSample, type Row, type Side } from '../lib/report.js';
import { Job } from '../../__tests__/support/runner.js';
import { reason, sluiceUnavailable } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { MiB, rotate, timed } from '../lib/stats.js';
import { GROWTH_FACTORS } from './lookups.js';

function describe(groups: PathGroup[]): string {
  const parts = groups.map((group) => `${group.count} × ${Math.round((group.bytes / MiB) * 10) / 10} MiB`);
  const total = groups.reduce((sum, group) => sum + group.count * group.bytes, 0);
  return `${Math.round(total / MiB)} MiB (${parts.join(' + ')})`;
}

interface PushComparison {
  sluice: Side;
  baseline: Side;
  proxyRss: number[];
  serverRss: number[];
  /** Where the time went on the Sluice side, per repetition (CPU seconds of each process). */
  cpu: CpuSample[];
}

/** Per repetition: fresh paths, pushed by a new job's daemon and copied by `nix copy` to a new file:// cache. */
async function comparePush(
  context: Context,
  groups: PathGroup[],
  stack: Stack | undefined,
  sluiceMissing: string,
  key: SigningKey,
): Promise<PushComparison> {
  const closures = new Map<number, Promise<Closure>>();
  const closureFor = (repetition: number) => {
    if (!closures.has(repetition)) closures.set(repetition, buildPaths(groups));
    return closures.get(repetition)!;
  };
  const proxyRss: number[] = [];
  const serverRss: number[] = [];
  const cpu: PushComparison['cpu'] = [];
  const viaSluice = async (repetition: number) => {
    const closure = await closureFor(repetition);
    settlePageCache(closure.paths);
    const daemon = await stack!.startJob(10 + repetition);
    try {
      const serverCpuBefore = stack!.server.cpuSeconds();
      const daemonCpuBefore = daemon.cpuSeconds();
      const { seconds, value: stats } = await timed(() => daemon.drain(closure.paths));
      cpu.push({
        wall: seconds,
        daemon: daemon.cpuSeconds() - daemonCpuBefore,
        server: stack!.server.cpuSeconds() - serverCpuBefore,
      });
      if (stats.pushed.paths !== closure.paths.length) {
        throw new Error(`the daemon pushed ${stats.pushed.paths} paths, expected ${closure.paths.length}`);
      }
      proxyRss.push(daemon.peakRssMB());
      serverRss.push(stack!.server.peakRssMB());
      return seconds;
    } finally {
      await daemon.close();
    }
  };
  const viaNixCopy = async (repetition: number) => {
    const closure = await closureFor(repetition);
    settlePageCache(closure.paths);
    const dir = context.scratch('push-file-cache');
    try {
      return (await timed(() => copyToFileCache(closure.paths, dir, key))).seconds;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const samples = await rotate(context.sizes.repetitions, stack ? [viaSluice, viaNixCopy] : [viaNixCopy]);
  for (const closure of closures.values()) await deletePaths(await closure);
  return {
    sluice: stack ? { samples: samples[0]! } : { unavailable: sluiceMissing },
    baseline: { samples: samples[stack ? 1 : 0]! },
    proxyRss,
    serverRss,
    cpu,
  };
}

export async function pushScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const key = await makeSigningKey(context.scratch('push-key'));
  let stack: Stack | undefined;
  let sluiceMissing = '';
  try {
    stack = await startStack(context, ['cli', 'proxy']);
  } catch (error) {
    sluiceMissing = reason(error);
  }
  const unavailable: Side = { unavailable: sluiceMissing };
  try {
    // First: the push samples below drop the page cache, which the steps would then find cold.
    log('nothing new: main step, no build, post step');
    let nothingNewSide: Side = unavailable;
    if (stack) {
      try {
        nothingNewSide = { samples: await nothingNew(context, stack) };
      } catch (error) {
        nothingNewSide = { unavailable: reason(error) };
      }
    }
    const nothingNewRow: Row = {
      scenario: 'nothing new: post step when the job built nothing',
      unit: 's',
      sluice: nothingNewSide,
      target: '≤ 1 s',
      met: (seconds) => seconds <= 1,
    };

    log(`push: ${describe(sizes.push)}, ${sizes.repetitions} repetitions`);
    const push = await comparePush(context, sizes.push, stack, sluiceMissing, key);
    const rows: Row[] = [
      {
        scenario: `push: post step pushing ${describe(sizes.push)}, zstd, vs nix copy to file://`,
        unit: 's',
        sluice: push.sluice,
        baseline: push.baseline,
        target: '≤ 1.3×',
        met: (_seconds, ratio) => ratio !== undefined && ratio <= 1.3,
        note: cpuNote(push.cpu),
      },
      {
        scenario: 'memory: proxy peak RSS while pushing',
        unit: 'MB',
        sluice: stack ? { samples: push.proxyRss } : unavailable,
        target: '≤ 100 MB',
        met: (megabytes) => megabytes <= 100,
      },
      {
        scenario: 'memory: server peak RSS while pushing',
        unit: 'MB',
        sluice: stack ? { samples: push.serverRss } : unavailable,
        target: '≤ 200 MB',
        met: (megabytes) => megabytes <= 200,
      },
      nothingNewRow,
    ];

    for (const factor of GROWTH_FACTORS) {
      const groups = [{ ...sizes.growthPush, count: factor * sizes.growthPush.count }];
      log(`push growth ${factor}×: ${describe(groups)}`);
      const growth = await comparePush(context, groups, stack, sluiceMissing, key);
      rows.push({
        group: 'growth',
        scenario: `growth: push ${factor}× (${groups[0]!.count} paths of ${Math.round(sizes.growthPush.bytes / 1024)} KiB)`,
        unit: 's',
        sluice: growth.sluice,
        baseline: growth.baseline,
        target: 'linear',
        note: cpuNote(growth.cpu),
      });
    }
    return rows;
  } finally {
    await stack?.close();
  }
}

/**
 * A job that built nothing, run as the runner runs it (the harness of the Action's tests, with the
 * bundled steps): main step, no build, then the post step, whose whole run (Node start, store diff,
 * drain, daemon stop, job summary) is timed.
 */
async function nothingNew(context: Context, stack: Stack): Promise<number[]> {
  const missing = sluiceUnavailable(context, ['main', 'post', 'hook']);
  if (missing) throw new Error(missing);
  const samples: number[] = [];
  for (let repetition = 0; repetition < context.sizes.repetitions; repetition++) {
    const job = new Job({
      inputs: { server: stack.server.url, listen: '127.0.0.1:0', 'upstream-caches': '', push: 'true' },
      idTokenRequest: stack.ids.runnerEndpoint,
      dist: context.bundles.dir,
    });
    try {
      const main = await job.runMain();
      if (main.exitCode !== 0 || main.warnings.length > 0) {
        throw new Error(`main step failed (${main.exitCode}): ${main.warnings.join('; ') || main.log}`);
      }
      const post = await job.runPost();
      if (post.outputs['pushed-paths'] !== '0' && post.exitCode === 0) {
        // The post step pushes the store diff: on a shared machine, paths other people built meanwhile.
        throw new Error(
          `the post step found ${post.outputs['pushed-paths']} new paths in the shared /nix/store (built by other processes during the job)`,
        );
      }
      if (post.exitCode !== 0 || post.warnings.length > 0) {
        throw new Error(
          `post step: exit ${post.exitCode}, ${post.warnings.join('; ')}, outputs ${JSON.stringify(post.outputs)}`,
        );
      }
      samples.push(post.durationMs / 1000);
    } finally {
      rmSync(job.runnerTemp, { recursive: true, force: true });
      rmSync(job.machine.dir, { recursive: true, force: true });
    }
  }
  return samples;
}
