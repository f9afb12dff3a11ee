// `npm run bench`: bundles the benchmark (TypeScript) and the Sluice entry points it drives (the
// CLI that starts the server, the proxy daemon) from the current sources with ncc, then runs it.
// Bundling fresh means the numbers describe the code in the tree, not a stale dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const out = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
const unavailable = {};

function bundle(entry, name) {
  execFileSync(
    process.execPath,
    ['node_modules/@vercel/ncc/dist/ncc/cli.js', 'build', entry, '-o', join(out, name), '--quiet'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
}

bundle('bench/index.ts', 'bench');
for (const name of ['cli', 'proxy']) {
  const entry = `src/entrypoints/${name}.ts`;
  if (!existsSync(entry)) {
    unavailable[name] = `${entry} is not in the tree yet`;
    continue;
  }
  try {
    bundle(entry, name);
  } catch (error) {
    unavailable[name] = `${entry} does not build: ${String(error.stderr ?? error).split('\n')[0]}`;
  }
}
writeFileSync(join(out, 'unavailable.json'), JSON.stringify(unavailable));

const result = spawnSync(process.execPath, [join(out, 'bench', 'index.js'), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, SLUICE_BENCH_BUNDLES: out },
});
rmSync(out, { recursive: true, force: true });
process.exit(result.status ?? 1);
