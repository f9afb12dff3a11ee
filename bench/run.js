// `npm run bench`: runs the benchmark's TypeScript directly (Node 24 strips the types; the hook
// below maps the `.js` specifiers of NodeNext-style imports to the `.ts` sources), after bundling
// the Sluice entry points it drives (the CLI that starts the server, the Action's steps and the
// proxy daemon) from the current sources with ncc, so the numbers describe the code in the tree,
// not a stale dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

const bundles = mkdtempSync(join(tmpdir(), 'sluice-bench-dist-'));
const unavailable = {};
for (const name of ['cli', 'proxy', 'main', 'post', 'hook']) {
  const entry = `src/entrypoints/${name}.ts`;
  if (!existsSync(entry)) {
    unavailable[name] = `${entry} is not in the tree yet`;
    continue;
  }
  try {
    execFileSync(
      process.execPath,
      ['node_modules/@vercel/ncc/dist/ncc/cli.js', 'build', entry, '-o', join(bundles, name), '--quiet'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (error) {
    unavailable[name] = `${entry} does not build: ${String(error.stderr ?? error).split('\n')[0]}`;
  }
}
writeFileSync(join(bundles, 'unavailable.json'), JSON.stringify(unavailable));
process.env.SLUICE_BENCH_BUNDLES = bundles;

try {
  const { run } = await import('./main.ts');
  await run(process.argv.slice(2));
} finally {
  rmSync(bundles, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
