import { describe, expect, it } from '@jest/globals';
import { nix, nixBuild, randomChainExpr } from './support/nix.js';

describe('test support: real nix', () => {
  it('builds a chain of derivations whose references form a closure', async () => {
    const [top] = await nixBuild(randomChainExpr(3, 1024));
    expect(top).toMatch(/^\/nix\/store\/[0-9a-z]{32}-sluice-test-3$/);
    const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
    expect(closure).toHaveLength(3);
  });
});
