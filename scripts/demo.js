// `npm run demo`: runs scripts/demo.ts with Node 24 straight from the TypeScript sources.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { status } = spawnSync(
  process.execPath,
  [
    '--experimental-transform-types',
    '--no-warnings',
    '--import',
    './__tests__/support/ts-loader.mjs',
    'scripts/demo.ts',
    ...process.argv.slice(2),
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(status ?? 1);
