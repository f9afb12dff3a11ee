import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  confFile,
  detectScope,
  effectiveSubstituters,
  removeNixConf,
  writeHookScript,
  writeNixConf,
  writeSubstituterFile,
} from '../../src/action/nix-config.js';
import { makeNixMachine, nix, salt } from '../support/nix.js';
import { NODE24 } from '../support/runner.js';

const KEY = 'sluice-test-1:2Z6Zr4gvnL1lL9ZtcOQ8OTLnrtfl4FfKjRbNr/IMiJ4=';
const PREFIX = 'p'.repeat(43);

function substituterFile(port: number): string {
  return writeSubstituterFile(
    mkdtempSync(join(tmpdir(), 'sluice-sub-')),
    `http://127.0.0.1:${port}/${PREFIX}`,
  );
}

async function showConfig(env: NodeJS.ProcessEnv): Promise<Record<string, { value: unknown }>> {
  const out = await nix('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], {
    env,
  });
  return JSON.parse(out) as Record<string, { value: unknown }>;
}

describe('nix.conf block', () => {
  it("goes into the user's nix.conf when builds run as this user, and Nix honours it", async () => {
    const machine = makeNixMachine();
    expect(detectScope(machine.env)).toBe('user');
    const file = confFile('user', machine.env);
    expect(file).toBe(join(machine.env.XDG_CONFIG_HOME!, 'nix', 'nix.conf'));

    const included = substituterFile(37515);
    await writeNixConf(file, { substituterFile: included, publicKeys: [KEY], postBuildHook: '/bin/true' });

    // The secret URL is only in the 0600 file nix.conf includes.
    expect(await effectiveSubstituters(machine.env)).toContain(`http://127.0.0.1:37515/${PREFIX}`);
    expect(readFileSync(file, 'utf8')).not.toContain(PREFIX);
    expect(statSync(included).mode & 0o777).toBe(0o600);
    const config = await showConfig(machine.env);
    expect(config['trusted-public-keys']!.value).toContain(KEY);
    expect(config['fallback']!.value).toBe(true);
    expect(config['post-build-hook']!.value).toBe('/bin/true');
  });

  it('replaces its own block when written twice, keeps the rest, and comes out cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-conf-'));
    const file = join(dir, 'nix', 'nix.conf');
    mkdirSync(dirname(file));
    const original = 'max-jobs = 4\n# mine\nkeep-outputs = true';
    writeFileSync(file, original);

    const first = substituterFile(1);
    const second = substituterFile(2);
    await writeNixConf(file, { substituterFile: first, publicKeys: [KEY] });
    await writeNixConf(file, { substituterFile: second, publicKeys: [KEY] });
    const text = readFileSync(file, 'utf8');
    expect(text.match(/!include/g)).toHaveLength(1);
    expect(text).toContain(second);
    expect(text).not.toContain(first);
    expect(text.startsWith(original)).toBe(true);

    expect(await removeNixConf(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(`${original}\n`);
    expect(await removeNixConf(file)).toBe(false);
  });

  it('targets the system nix.conf when a Nix daemon runs the builds', () => {
    const env = { NIX_REMOTE: 'daemon', NIX_CONF_DIR: '/tmp/some-etc-nix' };
    expect(detectScope(env)).toBe('system');
    expect(confFile('system', env)).toBe('/tmp/some-etc-nix/nix.conf');
    expect(detectScope({ NIX_REMOTE: 'local' })).toBe('user');
  });
});

describe('post-build hook', () => {
  const build = (tag: string) =>
    `derivation { name = "sluice-hook-test"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}"; args = [ "-c" "echo ${tag} > $out" ]; }`;

  it.each([
    ['its program fails', NODE24],
    ['node is gone', '/nonexistent/node'],
  ])('never fails a build, even when %s', async (_case, nodePath) => {
    const machine = makeNixMachine();
    const stateDir = mkdtempSync(join(tmpdir(), 'sluice-hook-'));
    const marker = join(stateDir, 'hook-ran');
    const program = join(stateDir, 'failing-hook.cjs');
    // A hook program that records it ran, then fails.
    writeFileSync(
      program,
      `require('node:fs').appendFileSync(${JSON.stringify(marker)}, process.env.DRV_PATH + '\\n'); process.exit(3);\n`,
    );
    const hook = writeHookScript(stateDir, nodePath, program, 'http://127.0.0.1:1', '/nonexistent/secret');
    await writeNixConf(confFile('user', machine.env), {
      substituterFile: substituterFile(1),
      publicKeys: [KEY],
      postBuildHook: hook,
    });
    const tag = salt();
    // A dead substituter plus a failing hook program: with `fallback` and an always-0 hook, Nix
    // still builds, and a second build in the same invocation still runs after the hook.
    const out = await nix(
      'nix-build',
      ['--no-out-link', '--expr', `[ (${build(tag)}) (${build(`${tag}-2`)}) ]`],
      {
        machine,
      },
    );
    const paths = out.trim().split('\n');
    expect(paths).toHaveLength(2);
    for (const p of paths) expect(existsSync(p)).toBe(true);
    // With node present the hook program ran (and failed) after each build.
    const ran = existsSync(marker) ? readFileSync(marker, 'utf8').trim().split('\n') : [];
    expect(ran).toHaveLength(nodePath === NODE24 ? 2 : 0);
  });
});
