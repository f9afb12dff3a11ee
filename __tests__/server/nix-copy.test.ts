/**
 * Real Nix against the real server: `nix copy` pushes a closure with an exchanged token in a netrc,
 * and a fresh store substitutes all of it trusting only the server's key.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { startTestServer, substituteFresh, writeNetrc, type TestServer } from '../support/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function closureOf(path: string): Promise<string[]> {
  return (await nix('nix-store', ['-qR', path])).trim().split('\n').sort();
}

describe.each(['zstd', 'xz', 'none'])('nix copy with compression=%s', (compression) => {
  it('pushes a closure and a fresh store substitutes all of it', async () => {
    const token = await server.ciToken();
    const pusher = makeNixMachine();
    const netrc = writeNetrc(pusher.dir, token);
    const [top] = await nixBuild(randomChainExpr(3, 2000), pusher);
    const closure = await closureOf(top as string);
    expect(closure.length).toBe(3);

    await nix(
      'nix',
      [
        'copy',
        '--option',
        'netrc-file',
        netrc,
        '--to',
        `${server.url}?compression=${compression}`,
        top as string,
      ],
      { machine: pusher },
    );

    const {
      machine: puller,
      store,
      closure: substituted,
    } = await substituteFresh(server, top as string, await server.readToken(['acme/*']));
    expect(substituted).toEqual(closure);
    // The substituted contents are the built ones, byte for byte.
    for (const path of closure) {
      const [mine, theirs] = await Promise.all([
        nix('nix-store', ['--dump', path], { maxBuffer: 1 << 24 }),
        nix('nix-store', ['--store', store, '--dump', path], { machine: puller, maxBuffer: 1 << 24 }),
      ]);
      expect(theirs).toBe(mine);
    }
  });
});
