/** A newcomer's first commands: `npm ci`, the CLI bundle on an old Node, `npm run bench -- --help`. */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildActionBundles, NODE24 } from './support/runner.js';

const REPO = resolve(import.meta.dirname, '..');
/** The machine's own Node (20 here): it has no `node:sqlite`. */
const SYSTEM_NODE = '/usr/bin/node';

describe('first commands', () => {
  it('every dependency install script is decided in allowScripts, so `npm ci` warns about none', () => {
    const result = spawnSync('npm', ['install-scripts', 'ls'], { cwd: REPO, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('No packages with unreviewed install scripts');
  });

  (existsSync(SYSTEM_NODE) ? it : it.skip)(
    'the CLI bundle on a Node without node:sqlite prints one line naming the Node it needs',
    () => {
      const cli = join(buildActionBundles(), 'cli', 'index.js');
      const version = spawnSync(SYSTEM_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
      expect(Number(/^v(\d+)/.exec(version)?.[1])).toBeLessThan(24);
      const old = spawnSync(SYSTEM_NODE, [cli, '--help'], { encoding: 'utf8' });
      expect(old.status).toBe(1);
      expect(old.stdout).toBe('');
      expect(old.stderr).toBe(`sluice needs Node.js 24 or later; this is Node.js ${version}\n`);

      const current = spawnSync(NODE24, [cli, '--help'], { encoding: 'utf8' });
      expect(current.status).toBe(0);
      expect(current.stdout).toContain('usage: sluice <command>');
    },
  );

  it('`npm run bench -- --help` prints the options and exits 0', () => {
    const bench = (args: string[]) =>
      spawnSync('npm', ['run', '--silent', 'bench', '--', ...args], { cwd: REPO, encoding: 'utf8' });
    const help = bench(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('usage: npm run bench');
    for (const option of ['--quick', '--only', '--repetitions', '--profile', '--worktree'])
      expect(help.stdout).toContain(option);
    expect(help.stderr).toBe('');
  });
});
