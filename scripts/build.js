// Bundles every entry point with ncc into dist/<name>/index.js.
// `--check` builds into a temporary directory and fails when the committed dist/ differs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { escapeNonAscii } from './ascii-bundle.js';

const entries = readdirSync('src/entrypoints')
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const check = process.argv.includes('--check');
const outRoot = check ? mkdtempSync(join(tmpdir(), 'sluice-dist-')) : 'dist';

for (const name of entries) {
  const out = join(outRoot, name);
  rmSync(out, { recursive: true, force: true });
  execFileSync(
    process.execPath,
    [
      'node_modules/@vercel/ncc/dist/ncc/cli.js',
      'build',
      `src/entrypoints/${name}.ts`,
      '-o',
      out,
      '--quiet',
      '--no-source-map-register',
    ],
    { stdio: 'inherit' },
  );
  escapeNonAscii(join(out, 'index.js'));
}

if (check) {
  const differences = compareTrees(outRoot, 'dist');
  rmSync(outRoot, { recursive: true, force: true });
  if (differences.length > 0) {
    console.error(
      `dist/ is stale; run \`npm run build\` and commit the result:\n  ${differences.join('\n  ')}`,
    );
    process.exit(1);
  }
  console.log(`dist/ is up to date (${entries.length} bundles)`);
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

function compareTrees(fresh, committed) {
  const freshFiles = listFiles(fresh);
  const committedFiles = listFiles(committed);
  const differences = [];
  for (const f of freshFiles) {
    if (!committedFiles.includes(f)) differences.push(`missing: dist/${f}`);
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))))
      differences.push(`differs: dist/${f}`);
  }
  for (const f of committedFiles) {
    if (!freshFiles.includes(f)) differences.push(`not built from src: ${relative('.', join(committed, f))}`);
  }
  return differences;
}
