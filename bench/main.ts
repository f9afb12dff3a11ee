/**
 * `npm run bench [-- --quick] [--only lookups,large-cache,ci-misses,substitution,push,concurrent,storage,gha-cache,gha-restore,gc] [--repetitions N] [--profile]`
 *
 * Runs every scenario side by side with its baseline, prints a markdown table of medians and
 * ratios (Sluice / baseline), and writes bench/results/<date>[-quick].md and .json.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeContext, type Context } from './lib/context.js';
import { describeMachine, type MachineDescription } from './lib/machine.js';
import { findNginx, NGINX_INSTALL_HINT } from './lib/nginx.js';
import { summariseProfiles } from './lib/profile.js';
import { markdownTable, notesMarkdown, rowsAsJson, type Row } from './lib/report.js';
import { ciMissesScenarios } from './scenarios/ci-misses.js';
import { concurrentScenario } from './scenarios/concurrent.js';
import { ghaCacheScenarios, ghaRestoreScenarios } from './scenarios/gha-cache.js';
import { largeCacheScenarios } from './scenarios/large-cache.js';
import { gcScenario } from './scenarios/gc.js';
import { lookupScenarios } from './scenarios/lookups.js';
import { pushScenarios } from './scenarios/push.js';
import { storageScenarios } from './scenarios/storage.js';
import { substitutionRepetitions, substitutionScenarios } from './scenarios/substitution.js';

const SCENARIOS: Record<string, (context: Context) => Promise<Row[]>> = {
  lookups: lookupScenarios,
  'large-cache': largeCacheScenarios,
  'ci-misses': ciMissesScenarios,
  substitution: substitutionScenarios,
  storage: storageScenarios,
  'gha-cache': (context) => ghaCacheScenarios(context),
  // gha-cache without the call counts: job 2's restore and substitution alone.
  'gha-restore': ghaRestoreScenarios,
  gc: gcScenario,
  // Last: their samples drop the page cache (page-cache.ts), which slowed the scenarios after them.
  push: pushScenarios,
  concurrent: concurrentScenario,
};

function machineMarkdown(machine: MachineDescription): string {
  return [
    `- CPU: ${machine.cpuModel}, ${machine.nproc} cores (nproc); memory ${machine.memoryGiB} GiB`,
    `- ${machine.kernel}; Node ${machine.node}; ${machine.nix}; ${machine.nginx}`,
    machine.pageCacheDropped
      ? '- before each push and concurrent-push sample (both sides): `sync`, the page cache dropped, the closure read back'
      : '- before each push and concurrent-push sample (both sides): `sync` only; dropping the page cache needs root',
  ].join('\n');
}

export const BENCH_USAGE = `usage: npm run bench -- [options]

options:
  --quick             smaller sizes, for a fast look (results named -quick)
  --only LIST         comma-separated scenarios: ${Object.keys(SCENARIOS).join(', ')}
  --repetitions N     runs per side (default: per scenario)
  --profile           CPU profiles of the server and proxy, summarised at the end
  --worktree          bundle the working tree instead of the last commit (HEAD)
  -h, --help          print this
`;

export async function run(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        repetitions: { type: 'string' },
        profile: { type: 'boolean', default: false },
        // Read by bench/run.js (which sources it bundles); accepted here so parseArgs does not refuse it.
        worktree: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n${BENCH_USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    process.stdout.write(BENCH_USAGE);
    return;
  }
  // gha-restore is a part of gha-cache, run alone only when asked for.
  const selected = values.only
    ? values.only.split(',')
    : Object.keys(SCENARIOS).filter((name) => name !== 'gha-restore');
  const unknown = selected.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0)
    throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);

  const nginx = findNginx();
  if (!nginx)
    process.stderr.write(
      `nginx not found: the lookup baseline needs it. Install it with:\n  ${NGINX_INSTALL_HINT}\n`,
    );
  const profileDir = values.profile ? mkdtempSync(join(tmpdir(), 'sluice-bench-profiles-')) : undefined;
  const context = makeContext(values.quick, nginx, profileDir);
  if (values.repetitions) context.sizes = { ...context.sizes, repetitions: Number(values.repetitions) };
  const machine = describeMachine(nginx);
  const started = new Date();

  const rows: Row[] = [];
  try {
    for (const name of selected) {
      context.log(`scenario ${name}`);
      rows.push(...(await SCENARIOS[name]!(context)));
    }
  } finally {
    context.cleanup();
  }

  const minutes = ((Date.now() - started.getTime()) / 60_000).toFixed(1);
  const title = `Sluice benchmarks, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${values.quick ? ' (--quick sizes)' : ''}`;
  const markdown = [
    `# ${title}`,
    '',
    machineMarkdown(machine),
    `- Sluice built from: ${process.env.SLUICE_BENCH_SOURCES ?? 'unknown'}`,
    `- ${context.sizes.repetitions} repetitions per side (substitution: ${substitutionRepetitions(context.sizes)}), sides alternated; medians shown; run took ${minutes} min`,
    '',
    markdownTable(rows.filter((row) => row.group !== 'growth')),
    '',
    '## How cost grows',
    '',
    markdownTable(rows.filter((row) => row.group === 'growth')),
    '',
    notesMarkdown(rows),
    '',
    ...(profileDir
      ? ['## CPU profiles (top self time)', '', summariseProfiles(profileDir, context.processLabels), '']
      : []),
  ].join('\n');
  process.stdout.write(`\n${markdown}`);

  const resultsDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  // One file per run (several people may run it the same day); partial runs say so in the name.
  const stamp = started.toISOString().slice(0, 16).replace(/:/g, '');
  const partial = values.only !== undefined || values.repetitions !== undefined || values.worktree;
  const name = `${stamp}Z${values.quick ? '-quick' : ''}${partial ? '-partial' : ''}`;
  writeFileSync(join(resultsDir, `${name}.md`), markdown);
  const json = {
    started: started.toISOString(),
    sources: process.env.SLUICE_BENCH_SOURCES ?? null,
    quick: values.quick,
    sizes: context.sizes,
    machine,
    rows: rowsAsJson(rows),
  };
  writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  process.stderr.write(`results written to bench/results/${name}.md and .json\n`);
}
