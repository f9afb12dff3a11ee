/**
 * End to end, the job's proxy under attack (issue 19, finding 4) and the secrets it leaves behind
 * (issue 18, item 1): a real fixed-output derivation in Nix's sandbox, which shares the host's
 * network, tries what the attack did; afterwards no file under RUNNER_TEMP holds a secret, also
 * when the daemon was killed or never started.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../../src/action/daemon-client.js';
import { addTinyPaths, makeNixMachine, salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { derivationExpr, hashPart, onServer, pushedInBackground } from './support.js';

let dist: string;
let server: TestServer;

// Bundling the Action from the sources takes minutes on a loaded machine.
const BUNDLE_TIMEOUT_MS = 600_000;

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer();
}, BUNDLE_TIMEOUT_MS);
afterAll(async () => {
  await server?.close();
});

interface Saved {
  daemon?: { pid: number; url: string };
  stateDir?: string;
  controlSecretFile?: string;
}

const inputs = () => ({ server: server.url, 'upstream-caches': '', 'drain-timeout': '30' });

/** Every file under `dir` that contains one of `secrets`, with the secret's kind. */
function filesHolding(dir: string, secrets: Map<string, string>): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { recursive: true }).map(String)) {
    const file = join(dir, entry);
    if (!statSync(file).isFile()) continue;
    const text = readFileSync(file, 'utf8');
    for (const [secret, kind] of secrets) if (text.includes(secret)) found.push(`${entry}: ${kind}`);
  }
  return found;
}

/** The job's secrets: what it masked (ID token, cache token, the proxy's two) and the runner's request token. */
function jobSecrets(job: Job): Map<string, string> {
  const secrets = new Map([...job.secrets].map((secret, i) => [secret, `masked secret #${i}`]));
  secrets.set(server.issuer.runner.token, 'the runner ID-token request token');
  return secrets;
}

/**
 * A fixed-output derivation that probes the proxy with curl and prints what it got. Nix gives
 * fixed-output derivations the host's network, even in the sandbox.
 */
function attackExpr(port: number, files: string[], privatePath: string, plantedPath: string): string {
  const proxy = `http://127.0.0.1:${port}`;
  const script = [
    ...files.map(
      (f) =>
        `if /bin/cat '${f}' >/dev/null 2>&1; then echo "RESULT ${f} read"; else echo "RESULT ${f} cannot-read"; fi`,
    ),
    `code() { /usr/bin/curl -s -o /dev/null -w '%{http_code}' "$@"; }`,
    `echo "RESULT nix-cache-info $(code ${proxy}/nix-cache-info)"`,
    `echo "RESULT narinfo $(code ${proxy}/${hashPart(privatePath)}.narinfo)"`,
    `echo "RESULT built $(code -X POST -H 'content-type: application/json' -d '{"outPaths":["${plantedPath}"]}' ${proxy}/_sluice/built)"`,
    `echo "RESULT stats $(code ${proxy}/_sluice/stats)"`,
    `echo "RESULT shutdown $(code -X POST ${proxy}/_sluice/shutdown)"`,
    'exit 1',
    '',
  ].join('\n');
  return `derivation {
    name = "sluice-attack";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ (builtins.toFile "sluice-attack.sh" ${JSON.stringify(script)}) ];
    salt = "${salt()}";
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "${'0'.repeat(52)}";
  }`;
}

describe('a fixed-output derivation in the sandbox', () => {
  it('reaches the proxy but gets 401 everywhere: reads nothing, pushes nothing, stops nothing', async () => {
    // The sandbox as on a runner, with the host's tools visible (there is no nixpkgs offline).
    const machine = makeNixMachine('sandbox = true\nextra-sandbox-paths = /bin /usr /lib /lib64\n');
    // In the store before the job: only a request to /_sluice/built could get it pushed.
    const [plantedPath] = await addTinyPaths(1, 'sluice-planted', machine);
    const job = new Job({ dist, machine, inputs: inputs(), idTokenRequest: server.issuer.runner });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    expect(main.warnings).toEqual([]);
    const saved = job.savedState() as Saved;
    const port = Number(new URL(saved.daemon!.url).port);

    const [privatePath] = await job.nixBuild(derivationExpr('sluice-e2e-private', salt()));
    expect(await pushedInBackground(server, job, [privatePath!])).toBe(true);

    const files = [
      join(saved.stateDir!, 'nix-substituter.conf'),
      saved.controlSecretFile!,
      join(job.machine.env.XDG_CONFIG_HOME!, 'nix', 'nix.conf'),
    ];
    let log = '';
    try {
      await job.nixBuild(attackExpr(port, files, privatePath!, plantedPath!));
    } catch (error) {
      log = String((error as { stderr?: string }).stderr ?? error);
    }
    const results = Object.fromEntries(
      [...log.matchAll(/RESULT (\S+) (\S+)/g)].map(([, what, outcome]) => [what, outcome]),
    );
    expect(results).toEqual({
      ...Object.fromEntries(files.map((f) => [f, 'cannot-read'])),
      'nix-cache-info': '401',
      narinfo: '401',
      built: '401',
      stats: '401',
      shutdown: '401',
    });

    expect(isAlive(saved.daemon!.pid)).toBe(true);
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(await onServer(server, plantedPath!)).toBe(false);
    expect(filesHolding(job.runnerTemp, jobSecrets(job))).toEqual([]);
  }, 180_000);
});

describe('secrets left on disk', () => {
  it('none under RUNNER_TEMP after a normal job, and the files existed while it ran', async () => {
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });
    expect((await job.runMain()).exitCode).toBe(0);
    const saved = job.savedState() as Saved;
    // The daemon read its config (token and all) and deleted it; the two files Nix and the hook need stay 0600.
    expect(filesHolding(job.runnerTemp, jobSecrets(job)).sort()).toEqual([
      expect.stringMatching(/control\.secret: masked/),
      expect.stringMatching(/nix-substituter\.conf: masked/),
    ]);
    expect(statSync(saved.controlSecretFile!).mode & 0o777).toBe(0o600);
    expect(statSync(join(saved.stateDir!, 'nix-substituter.conf')).mode & 0o777).toBe(0o600);
    expect(job.secrets.size).toBeGreaterThanOrEqual(4);
    expect((await job.runPost()).exitCode).toBe(0);
    expect(filesHolding(job.runnerTemp, jobSecrets(job))).toEqual([]);
  }, 120_000);

  it('none after the daemon was killed with SIGKILL mid-job', async () => {
    const job = new Job({ dist, inputs: inputs(), idTokenRequest: server.issuer.runner });
    expect((await job.runMain()).exitCode).toBe(0);
    const pid = (job.savedState() as Saved).daemon!.pid;
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings.join('\n')).toContain('died during the job');
    expect(filesHolding(job.runnerTemp, jobSecrets(job))).toEqual([]);
  }, 120_000);

  it('none when the daemon could not start', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const job = new Job({
        dist,
        inputs: { ...inputs(), listen: `127.0.0.1:${port}` },
        idTokenRequest: server.issuer.runner,
      });
      const main = await job.runMain();
      expect(main.warnings.join('\n')).toMatch(/proxy did not start[\s\S]*EADDRINUSE/);
      expect(filesHolding(job.runnerTemp, jobSecrets(job))).toEqual([]);
      expect((await job.runPost()).exitCode).toBe(0);
      expect(filesHolding(job.runnerTemp, jobSecrets(job))).toEqual([]);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 120_000);
});
