/**
 * Concurrent pushes: N jobs push different closures to one server at once, against one job alone
 * done N times. The server should keep most of the machine's single-job throughput.
 */
import { buildPaths, deletePaths, type Closure } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import type { Row } from '../lib/report.js';
import { reason } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { MiB, rotate, timed } from '../lib/stats.js';
import { settlePageCache } from '../lib/page-cache.js';

export async function concurrentScenario(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const jobs = sizes.concurrentJobs;
  const jobMiB = Math.round(
    sizes.concurrentJob.reduce((sum, group) => sum + group.count * group.bytes, 0) / MiB,
  );
  const scenario = `concurrent pushes: ${jobs} jobs pushing different ${jobMiB} MiB closures at once vs one job alone × ${jobs}`;
  const target = `≥ 0.7 of single-job throughput (ratio ≤ ${(1 / 0.7).toFixed(2)})`;
  let stack: Stack;
  try {
    stack = await startStack(context, ['cli', 'proxy']);
  } catch (error) {
    const unavailable = {
      unavailable: reason(error),
    };
    return [{ scenario, unit: 's', sluice: unavailable, baseline: unavailable, target }];
  }
  const built: Closure[] = [];
  const build = async () => {
    const closure = await buildPaths(sizes.concurrentJob);
    built.push(closure);
    return closure;
  };
  let nextJob = 1000;

  const together = async () => {
    const closures = await Promise.all(Array.from({ length: jobs }, build));
    settlePageCache(closures.flatMap((closure) => closure.paths));
    const daemons = await Promise.all(closures.map(() => stack.startJob(nextJob++)));
    try {
      return (await timed(() => Promise.all(daemons.map((daemon, i) => daemon.drain(closures[i]!.paths)))))
        .seconds;
    } finally {
      await Promise.all(daemons.map((daemon) => daemon.close()));
    }
  };
  // One job alone, scaled to the same amount of work: what 8 jobs cost back to back.
  const aloneTimesJobs = async () => {
    const closure = await build();
    settlePageCache(closure.paths);
    const daemon = await stack.startJob(nextJob++);
    try {
      return jobs * (await timed(() => daemon.drain(closure.paths))).seconds;
    } finally {
      await daemon.close();
    }
  };

  try {
    log(`concurrent: ${jobs} × ${jobMiB} MiB, ${sizes.repetitions} repetitions`);
    const [concurrent, alone] = await rotate(sizes.repetitions, [together, aloneTimesJobs]);
    return [
      {
        scenario,
        unit: 's',
        sluice: { samples: concurrent! },
        baseline: { samples: alone! },
        target,
        met: (_seconds, ratio) => ratio !== undefined && 1 / ratio >= 0.7,
      },
    ];
  } finally {
    await stack.close();
    for (const closure of built) await deletePaths(closure);
  }
}
