/**
 * The programs the Action runs show in the step log as `@actions/exec` shows them (`[command]…`),
 * and data they print (nix's JSON configuration, validity lists) stays out of the log.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { derivationExpr } from './support.js';

let dist: string;
let server: TestServer;

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe('commands in the step log', () => {
  it('nix and nix-store appear as [command] lines; their JSON and path lists do not', async () => {
    const job = new Job({
      dist,
      inputs: { server: server.url, listen: '127.0.0.1:0', 'upstream-caches': '' },
      idTokenRequest: server.issuer.runner,
    });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.log).toMatch(/^\[command\]\S*\/nix --version$/m);
    expect(main.log).toMatch(/^nix \(Nix\) \d/m);
    expect(main.log).toMatch(
      /^\[command\]\S*\/nix --extra-experimental-features nix-command show-config --json$/m,
    );
    expect(main.log).not.toContain('"substituters"');

    await job.nixBuild(derivationExpr('sluice-e2e-commands', salt()));
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    const validity = post.log.split('\n').filter((line) => line.includes('--check-validity'));
    expect(validity).toHaveLength(1);
    expect(validity[0]).toMatch(/^\[command\]\S*\/nix-store --check-validity --print-invalid \/nix\/store\//);
    expect(validity[0]!.length).toBeLessThanOrEqual(202);
  }, 120_000);
});
