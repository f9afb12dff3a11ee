// `npm run bench`: runs the benchmark's TypeScript directly (Node 24 strips the types; the hook
// below maps the `.js` specifiers of NodeNext-style imports to the `.ts` sources), after bundling
// the Sluice entry points it drives (the CLI that starts the server, the Action's steps and the
// proxy daemon) with ncc from the committed sources (`git archive HEAD`), so the numbers describe a
// commit, neither a stale dist/ nor someone's half-finished file. `--worktree` bundles the working
// tree instead, for measuring a change before committing it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { escapeNonAscii } from '../scripts/ascii-bundle.js';

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (!/^\.\.?\/.*\.js$/.test(specifier)) throw error;
      return nextResolve(specifier.replace(/\.js$/, '.ts'), context);
    }
  },
});

// Options are read by main.ts; asking for help needs no bundles.
if (process.argv.slice(2).some((arg) => arg === '--help' || arg === '-h')) {
  const { run } = await import('./main.ts');
  await run(process.argv.slice(2));
  process.exit(process.exitCode ?? 0);
}

const bundles = mkdtempSync(join(tmpdir(), 'sluice-bench-dist-'));
const unavailable = {};
const fromWorktree = process.argv.includes('--worktree');
const sources = fromWorktree ? process.cwd() : join(bundles, 'src-head');
if (!fromWorktree) {
  mkdirSync(sources);
  execFileSync('sh', ['-c', `git archive HEAD | tar -x -C '${sources}'`]);
  symlinkSync(join(process.cwd(), 'node_modules'), join(sources, 'node_modules'));
}
for (const name of ['cli', 'verify-worker', 'proxy', 'main', 'post', 'hook']) {
  const entry = `src/entrypoints/${name}.ts`;
  if (!existsSync(join(sources, entry))) {
    unavailable[name] = `${entry} is not in the tree yet`;
    continue;
  }
  try {
    execFileSync(
      process.execPath,
      [
        join(sources, 'node_modules/@vercel/ncc/dist/ncc/cli.js'),
        'build',
        entry,
        '-o',
        join(bundles, name),
        '--quiet',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: sources },
    );
    escapeNonAscii(join(bundles, name, 'index.js'));
  } catch (error) {
    unavailable[name] = `${entry} does not build: ${String(error.stderr ?? error).split('\n')[0]}`;
  }
}
writeFileSync(join(bundles, 'unavailable.json'), JSON.stringify(unavailable));
if (!fromWorktree) rmSync(sources, { recursive: true, force: true });
process.env.SLUICE_BENCH_BUNDLES = bundles;
process.env.SLUICE_BENCH_SOURCES = fromWorktree
  ? 'working tree'
  : execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();

try {
  const { run } = await import('./main.ts');
  await run(process.argv.slice(2));
} finally {
  rmSync(bundles, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
