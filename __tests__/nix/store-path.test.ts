import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_NAME_LENGTH, StorePath, StorePathError } from '../../src/nix/store-path.js';
import { nix, nixBuild, salt } from '../support/nix.js';

const HASH = '0123456789abcdfghijklmnpqrsvwxyz';
const built: string[] = [];

afterAll(async () => {
  if (built.length > 0) await nix('nix-store', ['--delete', ...built]).catch(() => undefined);
});

/**
 * Asks Nix whether it accepts `path` as a store path: an empty binary cache parses the path and
 * reports it as invalid (not present) when the syntax is right, and fails naming the problem when not.
 */
async function nixAccepts(path: string, storeDir = '/nix/store'): Promise<{ ok: boolean; message: string }> {
  const cache = mkdtempSync(join(tmpdir(), 'sluice-empty-cache-'));
  try {
    const out = await nix('nix-store', [
      '--store',
      `file://${cache}?store=${storeDir}`,
      '--check-validity',
      '--print-invalid',
      path,
    ]);
    return { ok: out.trim() === path, message: out.trim() };
  } catch (e) {
    return { ok: false, message: String((e as { stderr?: string }).stderr ?? e) };
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

function oursAccepts(path: string, storeDir = '/nix/store'): { ok: boolean; message: string } {
  try {
    StorePath.parse(path, storeDir);
    return { ok: true, message: '' };
  } catch (e) {
    if (!(e instanceof StorePathError)) throw e;
    return { ok: false, message: e.message };
  }
}

describe('StorePath against paths Nix builds', () => {
  it('parses hash part and name of built paths, with every allowed special character', async () => {
    const name = `sluice-A+b-c._d?e=f-${salt().replace(/[^a-z0-9]/g, '')}`;
    const [out] = await nixBuild(
      `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo hi > $out"]; }`,
    );
    built.push(out!);
    const path = StorePath.parse(out!);
    expect(path.name).toBe(name);
    expect(path.hashPart).toBe(out!.slice('/nix/store/'.length, '/nix/store/'.length + 32));
    expect(path.toPath()).toBe(out);
    expect(path.baseName).toBe(out!.slice('/nix/store/'.length));
    // `nix-store --query --hash` proves Nix knows the path under exactly this name.
    expect(await nix('nix-store', ['--query', '--hash', path.toPath()])).toMatch(/^sha256:/);
  });

  it(`accepts the longest name Nix makes (${MAX_NAME_LENGTH} characters) and refuses one more`, async () => {
    const longest = 'n'.repeat(MAX_NAME_LENGTH);
    const out = (
      await nix('nix-instantiate', ['--eval', '--json', '-E', `builtins.toFile "${longest}" "x"`])
    ).trim();
    expect(StorePath.parse(JSON.parse(out) as string).name).toBe(longest);
    await expect(
      nix('nix-instantiate', ['--eval', '-E', `builtins.toFile "${longest}n" "x"`]),
    ).rejects.toThrow(/longer than 211|less than 212/);
    expect(() => StorePath.fromBaseName(`${HASH}-${longest}n`)).toThrow(/longer than 211 characters/);
  });

  it('uses another store dir when told, as Nix computes paths for it', async () => {
    const out = (
      await nix('nix-instantiate', [
        '--store',
        'dummy://?store=/foo/store',
        '--eval',
        '--json',
        '-E',
        'builtins.toFile "x" "y"',
      ])
    ).trim();
    const path = JSON.parse(out) as string;
    expect(StorePath.parse(path, '/foo/store').toPath('/foo/store')).toBe(path);
    expect(StorePath.parse(path, '/foo/store/').name).toBe('x');
    expect(() => StorePath.parse(path)).toThrow(`path '${path}' is not in the store '/nix/store'`);
    expect(() => StorePath.parse(`/nix/store/${HASH}-x`, '/foo/store')).toThrow(
      /is not in the store '\/foo\/store'/,
    );
    expect(() => StorePath.parse(`/foo/${HASH}-x`, 'foo')).toThrow(
      /must be an absolute, canonical directory/,
    );
    expect(() => StorePath.parse(`/${HASH}-x`, '/')).toThrow(/must be an absolute, canonical directory/);
  });
});

describe('StorePath validation agrees with Nix', () => {
  const n = (name: string) => `/nix/store/${HASH}-${name}`;
  const cases: [string, RegExp | null][] = [
    [n('hello-2.12'), null],
    [n('a+b-c._d?e=f'), null],
    [n('-leading-dash'), null],
    [n('.hidden'), null],
    [n('x'.repeat(MAX_NAME_LENGTH)), null],
    [n('x'.repeat(MAX_NAME_LENGTH + 1)), /longer than 211 characters/],
    [n(''), /has an empty name/],
    [n('a b'), /the character ' '/],
    [n('a@b'), /the character '@'/],
    [n('a:b'), /the character ':'/],
    [n('caf\u00e9'), /the character '\u00e9'/],
    ['/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x', /is not nix32/],
    ['/nix/store/0123456789ABCDFGHIJKLMNPQRSVWXYZ-x', /is not nix32/],
    ['/nix/store/0123456789abcdfghijklmnpqrsvwxy-x', /not a store path base name/],
    ['/nix/store/abc-x', /not a store path base name/],
  ];

  it.each(cases)('%s', async (path, ourError) => {
    const theirs = await nixAccepts(path);
    const ours = oursAccepts(path);
    expect(ours.ok).toBe(theirs.ok);
    if (ourError) expect(ours.message).toMatch(ourError);
  });

  it('accepts in another store dir what Nix accepts there', async () => {
    const path = `/foo/store/${HASH}-x`;
    expect((await nixAccepts(path, '/foo/store')).ok).toBe(true);
    expect(oursAccepts(path, '/foo/store').ok).toBe(true);
  });

  it('refuses ".", ".." and "..-x" names, which Nix 2.8 still makes but later Nix refuses', async () => {
    for (const name of ['.', '..', '..-x', '.-x']) {
      const made = JSON.parse(
        (await nix('nix-instantiate', ['--eval', '--json', '-E', `builtins.toFile "${name}" "x"`])).trim(),
      ) as string;
      expect(made.endsWith(`-${name}`)).toBe(true);
      expect(() => StorePath.parse(made)).toThrow(/must not start with '\.{1,2}'/);
    }
  });

  it('refuses paths below a store path and names the problem', () => {
    expect(() => StorePath.parse(`/nix/store/${HASH}-x/bin/sh`)).toThrow(
      /inside a store path, not a store path/,
    );
    expect(StorePath.isValid(`/nix/store/${HASH}-x`)).toBe(true);
    expect(StorePath.isValid(`/nix/store/${HASH}-x/bin`)).toBe(false);
  });
});
