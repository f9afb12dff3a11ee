import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hash } from '../../src/nix/hash.js';
import { makeNixMachine, nix } from '../support/nix.js';

describe('Hash against nix-hash', () => {
  it('formats sha256 as nix32, base16 and SRI exactly as Nix does', async () => {
    const machine = makeNixMachine();
    const file = join(machine.dir, 'data');
    const data = Buffer.from('hello sluice\n');
    writeFileSync(file, data);
    const hash = Hash.of('sha256', data);
    const run = async (...flags: string[]) =>
      (await nix('nix-hash', ['--type', 'sha256', '--flat', ...flags, file], { machine })).trim();
    expect(hash.nix32).toBe(await run('--base32'));
    expect(hash.base16).toBe(await run());
    expect(hash.toSRI()).toBe((await nix('nix', ['hash', 'file', '--sri', file], { machine })).trim());
    expect(Hash.parse(hash.toSRI()).equals(hash)).toBe(true);
    expect(Hash.parse(hash.toBase16String()).toString()).toBe(`sha256:${await run('--base32')}`);
  });
});
